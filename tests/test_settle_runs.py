"""Settling end to end: sessions that change while the run waits, on the emulator's clock.

The emulator's lifecycle (``lifetime``, ``create_sessions``) lets a session answer
``IN_PROGRESS`` now and ``SUCCEEDED``/``FAILED`` a second later; a run with ``--settle``
asks it again every ``--settle-interval`` until it does. Timing is bounded, never
asserted exactly: each pending session is asked at most once per interval (plus its
first question), whatever the machine's load.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from batch.emulator import EmulatorThread, write_input
from batch.store.checkpoint import journal_path
from tests.helpers import DEADLINE, read_report, run_cli, start_cli, wait_for_lines

INTERVAL = 0.2


def test_sessions_in_progress_settle_during_the_run_and_never_started_ones_expire(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVENESS_AUDIT_LOG_INTERVAL", "0.1")  # progress lines while waiting
    # Settled 6 s and 7 s after creation: a run that takes seconds to start on a loaded
    # machine still finds every session pending at its first question.
    emulator.configure(lifetime=60.0, expire_unfinished=7.0)
    started = emulator.create_sessions(4, start_after=0.0, finish_after=6.0)
    never = emulator.create_sessions(3, start_after=None, fate="EXPIRED")
    ids = started + never
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"

    begin = time.monotonic()
    ran = run_cli(
        "run",
        source,
        "--output",
        output,
        "--settle",
        "20s",
        "--settle-interval",
        str(INTERVAL),
        "--no-progress",
    )
    elapsed = time.monotonic() - begin

    assert ran.code == 0, ran.stderr
    report = read_report(output)
    assert report.loc[started, "status"].isin(["SUCCEEDED", "FAILED"]).all()
    assert report.loc[started, "confidence"].notna().all()
    assert (report.loc[never, "status"] == "EXPIRED").all()
    asked = emulator.stats()["by_session"]
    for sid in ids:
        assert asked[sid] >= 2, "a pending session is asked again"
        assert asked[sid] <= elapsed / INTERVAL + 2, "at the settle interval, not in a loop"
        assert report.loc[sid, "checks"] == asked[sid]
    assert "pending" not in ran.stdout
    assert "pending waiting to settle" in ran.stderr  # progress shows who is waiting


def test_sessions_still_pending_when_settling_ends_exit_1_and_a_rerun_asks_again(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(lifetime=600.0, expire_unfinished=300.0)
    waiting = emulator.create_sessions(2, start_after=None, fate="EXPIRED")  # CREATED a while
    source = tmp_path / "in.csv"
    write_input(source, waiting)
    output = tmp_path / "report.parquet"
    args = ("run", source, "--output", output, "--settle-interval", str(INTERVAL))

    begin = time.monotonic()
    ran = run_cli(*args, "--settle", "0.6s")
    elapsed = time.monotonic() - begin

    assert ran.code == 1
    assert "2 sessions still pending: a rerun asks again" in ran.stderr
    assert "2 pending" in ran.stdout
    report = read_report(output)
    assert (report["status"] == "CREATED").all()
    asked = emulator.stats()["by_session"]
    assert all(2 <= asked[sid] <= min(0.6, elapsed) / INTERVAL + 2 for sid in waiting)

    ran = run_cli(*args, "--settle", "0")  # not waiting: asked once more, then reported

    assert ran.code == 0
    assert all(emulator.stats()["by_session"][sid] == asked[sid] + 1 for sid in waiting)
    assert (read_report(output)["checks"] == asked[waiting[0]] + 1).all()


def test_a_stop_while_sessions_wait_to_settle_ends_the_run_at_once(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVENESS_AUDIT_DRAIN_TIMEOUT", "300")  # no deadline cuts it short
    emulator.configure(lifetime=600.0, expire_unfinished=300.0)
    waiting = emulator.create_sessions(3, start_after=None, fate="EXPIRED")
    source = tmp_path / "in.csv"
    write_input(source, waiting)
    output = tmp_path / "report.parquet"
    proc = start_cli("run", source, "--output", output, "--settle", "3m", "--settle-interval", "2m")
    wait_for_lines(journal_path(output), 3, proc)  # each answered CREATED once: now waiting

    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=DEADLINE)  # not the 2 minutes to the next turn
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the stop did not wake the run waiting for the next settle turn")

    assert proc.returncode == 1, stderr
    assert "still pending" in stderr
    report = read_report(output)
    assert (report.loc[waiting, "status"] == "CREATED").all()
    assert all(emulator.stats()["by_session"][sid] == 1 for sid in waiting)
