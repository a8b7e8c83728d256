"""Hostile and broken input: one clear line on stderr and exit 2, nothing sent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.emulator import EmulatorThread, write_input
from tests.helpers import run_cli

GOOD = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"


def parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def truncated_parquet(tmp: Path) -> Path:
    good = parquet(tmp / "good.parquet", pa.table({"session_id": [GOOD] * 5000}))
    cut = tmp / "cut.parquet"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return cut


INPUTS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing file", lambda t: t / "nope.csv", "input file not found"),
    ("a directory", lambda t: _folder(t / "dir.csv"), "is a directory"),
    ("0-byte file", lambda t: _write(t / "e.csv", b""), "empty (0 bytes)"),
    ("unknown extension", lambda t: _write(t / "ids.xlsx", b"x"), "cannot tell the format"),
    ("not UTF-8", lambda t: _write(t / "l.csv", b"session_id\n\xe9t\xe9\n"), "not UTF-8"),
    (
        "missing column",
        lambda t: _write(t / "c.csv", b"id,name\n1,2\n"),
        "column 'session_id' not found; columns present: 'id', 'name'",
    ),
    (
        "corrupt Parquet",
        lambda t: _write(t / "x.parquet", b"PAR1garbagePAR1"),
        "not a readable Parquet file",
    ),
    ("truncated Parquet", truncated_parquet, "Parquet file"),
    (
        "column not text",
        lambda t: parquet(t / "n.parquet", pa.table({"session_id": [1.5, 2.5]})),
        "holds double, not text",
    ),
    (
        "unbalanced quotes",
        lambda t: _write(t / "q.csv", b'session_id,x\n"abc,1\n'),
        "not a readable CSV file",
    ),
]


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("case", "make", "message"), INPUTS, ids=[c for c, _, _ in INPUTS])
def test_broken_input_exits_2_with_one_line(
    emulator: EmulatorThread,
    tmp_path: Path,
    case: str,
    make: Callable[[Path], Path],
    message: str,
) -> None:
    ran = run_cli("run", make(tmp_path), "--output", tmp_path / "r.parquet")
    assert ran.code == 2, f"{case}: {ran.stderr}"
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert emulator.stats()["requests"] == 0
    assert not (tmp_path / "r.parquet").exists()


def test_long_and_binary_looking_cells_are_invalid_ids_never_sent(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    sid = emulator.population.ids()[0]
    cells = ["A" * 10_000, "\x00\x01\x02binary", "\u202eevil", f"{sid}\x00", "\ufeff" + sid]
    source = parquet(tmp_path / "in.parquet", pa.table({"session_id": [sid, *cells]}))
    output = tmp_path / "r.parquet"
    ran = run_cli("run", source, "--output", output)
    assert ran.code == 0, ran.stderr
    report = pd.read_parquet(output)
    invalid = report[report["error_code"] == "InvalidSessionId"]
    assert len(invalid) == len(cells)
    assert invalid["session_id"].str.len().max() <= 64 + 20
    assert all(s.isprintable() for s in invalid["session_id"])
    assert emulator.stats()["requests"] == 1


def without_root_override(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI so file permissions apply: as root, drop the DAC override capabilities."""
    command = [sys.executable, "-m", "batch", *map(str, args)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.fail("running as root needs util-linux setpriv to test file permissions")
        command = [
            setpriv,
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
            *command,
        ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_unreadable_input_and_unwritable_output_folder(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, [GOOD])
    source.chmod(0)
    ran = without_root_override("run", source, "--output", tmp_path / "r.parquet")
    assert ran.returncode == 2, ran.stderr
    assert "not readable (permission denied)" in ran.stderr

    source.chmod(0o600)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    ran = without_root_override("run", source, "--output", locked / "r.parquet")
    assert ran.returncode == 2, ran.stderr
    assert "output folder is not writable" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert emulator.stats()["requests"] == 0
