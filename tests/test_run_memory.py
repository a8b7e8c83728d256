"""A run's memory does not grow with its answers: they leave Python as they arrive.

The emulator runs as its own process (its own bookkeeping grows with the sessions it
serves; it must not be counted); the run runs in this one, under ``tracemalloc``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch.config import load_settings
from batch.run.audit import AuditRun

SESSIONS = 5_000  # 2,000 vs 20,000 took 20 minutes under tracemalloc on a loaded host
FEW = 500


@pytest.fixture
def big_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """An emulator process serving ``SESSIONS`` sessions; their IDs."""
    url_file, ids_file = tmp_path / "url", tmp_path / "ids.csv"
    command = [
        sys.executable, "-m", "batch", "emulator", "--sessions", str(SESSIONS), "--seed", "3",
        "--url-file", str(url_file), "--write-input", str(ids_file),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        limit = time.monotonic() + 120
        while not url_file.exists():  # the emulator writes it once it listens
            assert proc.poll() is None, "the emulator did not start"
            assert time.monotonic() < limit, "the emulator did not start in time"
            time.sleep(0.05)
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", url_file.read_text().strip())
        yield ids_file.read_text().splitlines()[1:]
    finally:
        proc.terminate()
        proc.wait()


def peak_of_run(ids: list[str], folder: Path) -> int:
    """The peak of Python memory (bytes) over one run of ``ids`` into a new report."""
    folder.mkdir()
    source = folder / "in.csv"
    source.write_text("session_id\n" + "\n".join(ids) + "\n")
    settings = load_settings(
        flags={
            "rate": 5000,
            "concurrency": 32,
            "work_dir": folder / "work",
            "batch_rows": 1000,
            "settle": 0,  # the population's pending sessions never settle: no waiting
        }
    )
    run = AuditRun(source, folder / "report.parquet", settings)
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    summary = asyncio.run(run.run())
    assert summary.sessions == len(ids)
    return tracemalloc.get_traced_memory()[1] - start


@pytest.mark.timeout(900)  # tracemalloc slows the run several times over
def test_a_runs_memory_does_not_grow_with_its_sessions(
    big_emulator: list[str], tmp_path: Path
) -> None:
    tracemalloc.start()
    try:
        peak_of_run(big_emulator[:200], tmp_path / "warm")  # imports, pools, caches
        few = peak_of_run(big_emulator[:FEW], tmp_path / "few")
        many = peak_of_run(big_emulator, tmp_path / "many")
    finally:
        tracemalloc.stop()
    grown = (many - few) / (SESSIONS - FEW)
    # a row held as a dict costs ~4 KB; measured 567 bytes (the plan's ID and kept answer
    # in columns: 30 of them, 60 before issue 24's round 5, when it measured 616; the rest
    # the report's and spill's buffers filling up, which stop at a row group's 8,000 rows)
    assert grown < 700, f"{grown:.0f} bytes more per session ({few=} {many=})"
