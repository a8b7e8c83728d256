"""A property over whole runs: whatever sequence of runs a report goes through (with and
without kept columns and reconciliation, with ``--fresh``, killed with SIGKILL between
them), no value it held is ever lost or downgraded.

Each example is a short sequence of real CLI runs against the emulator into a fresh
report; after every step the report is read and compared with everything seen before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch.emulator import EmulatorThread, write_input
from batch.store.checkpoint import journal_path
from batch.store.ledger import rank
from batch.store.manifest import verify_report
from batch.store.row import Row
from tests.helpers import DEADLINE, run_cli, start_cli

SESSIONS = 12
RECONCILE = ("--keep-columns", "customer_ref", "--app-decision-column", "app_decision")
CARRIED = ("customer_ref", "app_decision", "agrees")
KINDS = ("run", "fresh", "options", "kill")

steps = st.lists(
    st.tuples(st.sampled_from(KINDS), st.sets(st.integers(0, SESSIONS - 1), min_size=4)),
    min_size=2,
    max_size=4,
)


def check(report: Path, seen: dict[str, dict[str, Any]]) -> None:
    """No session of ``seen`` is gone, none ranks lower, no result or kept value changed."""
    if not report.exists():
        assert not seen
        return
    assert verify_report(report).ok
    rows = {row["session_id"]: row for row in pq.read_table(report).to_pylist()}
    for sid, before in seen.items():
        assert sid in rows, f"{sid} was lost"
        now = rows[sid]
        assert rank(Row.from_flat(now)) >= rank(Row.from_flat(before)), (
            f"{sid}: {before['status']} -> {now['status']}"
        )
        if before["status"] in ("SUCCEEDED", "FAILED"):
            assert now["confidence"] == before["confidence"]
            assert now["fetched_at"] == before["fetched_at"]
        for name in CARRIED:
            if before.get(name) is not None:
                assert now.get(name) == before[name], f"{sid}: {name} lost"
    seen.update(rows)


def killed_after_an_answer(proc: subprocess.Popen[str], journal: Path) -> None:
    """SIGKILL once the journal holds an answer; a run with so little to ask that it ends
    first is left to end (a plain run: the property holds for it too)."""
    limit = time.monotonic() + DEADLINE
    while proc.poll() is None and time.monotonic() < limit:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 2:  # header + a row
            break
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=DEADLINE)


def step(kind: str, source: Path, report: Path, emulator: EmulatorThread) -> None:
    args = ("run", source, "--output", report, "--settle", "0", "--concurrency", "2")
    if kind == "kill":
        emulator.configure(latency=0.3)
        proc = start_cli(*args, *RECONCILE)
        try:
            killed_after_an_answer(proc, journal_path(report))
        finally:
            emulator.configure(latency=0.0)
        return
    extra = {"run": (), "fresh": ("--fresh",), "options": RECONCILE}[kind]
    ran = run_cli(*args, *extra)
    assert ran.code in (0, 1), ran.stderr


@settings(
    max_examples=6,
    # CI replays one fixed set of sequences (a red CI blocks a landing); elsewhere each run
    # draws new ones, and a failure found there is a bug to fix and a case to pin
    derandomize=os.environ.get("CI") == "true",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=steps)
def test_no_sequence_of_runs_loses_or_downgrades_a_value(
    emulator: EmulatorThread, sequence: list[tuple[str, set[int]]]
) -> None:
    ids = list(emulator.population.ids()[:SESSIONS])
    seen: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report = folder / "report.parquet"
        for number, (kind, chosen) in enumerate(sequence):
            source = folder / f"in-{number}.csv"
            write_input(
                source, [ids[i] for i in sorted(chosen)], reconcile_with=emulator.population
            )
            step(kind, source, report, emulator)
            check(report, seen)
        ran = run_cli("run", source, "--output", report, "--settle", "0")  # the last, whole
        assert ran.code in (0, 1), ran.stderr
        check(report, seen)
