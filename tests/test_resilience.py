"""Unattended nights: kill -9 and resume, SIGTERM, time budget, locks, a dead endpoint.

These start the real command as a subprocess where a signal has to reach it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from batch.emulator import EmulatorThread, write_input
from batch.store.checkpoint import RunLock, journal_path
from tests.helpers import DEADLINE, run_cli, start_cli, wait_for_lines


def ok_counts(emulator: EmulatorThread) -> dict[str, int]:
    stats = emulator.stats()
    data = stats if isinstance(stats, dict) else stats.__dict__
    return dict(data["ok_by_session"])


PENDING = ("CREATED", "IN_PROGRESS")


def settled_ids(emulator: EmulatorThread, ids: list[str]) -> list[str]:
    """The sessions whose answer is final: a rerun asks pending ones again, on purpose."""
    return [sid for sid in ids if emulator.population.status(sid) not in PENDING]


def prepare(emulator: EmulatorThread, tmp_path: Path, n: int) -> tuple[list[str], Path, Path]:
    ids = list(emulator.population.ids()[:n])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    return ids, source, tmp_path / "report.parquet"


def assert_complete(output: Path, ids: list[str]) -> pd.DataFrame:
    report = pd.read_parquet(output)
    assert len(report) == len(ids)
    assert report["session_id"].is_unique
    assert set(report["session_id"]) == set(ids)
    return report


def test_kill_9_then_rerun_resumes_exactly_once(emulator: EmulatorThread, tmp_path: Path) -> None:
    emulator.configure(latency=0.01)
    ids, source, output = prepare(emulator, tmp_path, 1500)
    args = ("run", source, "--output", output, "--rate", "300", "--concurrency", "8")

    proc = start_cli(*args)
    wait_for_lines(journal_path(output), 300, proc)
    proc.kill()
    proc.communicate()
    assert not output.exists(), "a half-written report must never appear at REPORT"

    ran = run_cli(*args)

    assert ran.code == 0, ran.stderr
    assert "resumed from the checkpoint" in ran.stdout
    report = assert_complete(output, ids)
    assert report["status"].notna().all()
    ok = ok_counts(emulator)
    twice = [sid for sid in settled_ids(emulator, ids) if ok[sid] > 1]
    # Refetched: at most the sessions in flight when the process died.
    assert len(twice) <= 8
    assert all(ok[sid] >= 1 for sid in ids)
    assert not journal_path(output).exists(), "a complete run leaves no checkpoint behind"


def test_sigterm_stops_in_order_and_a_rerun_finishes(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(latency=0.01)
    ids, source, output = prepare(emulator, tmp_path, 1500)
    args = ("run", source, "--output", output, "--rate", "300", "--concurrency", "8")

    proc = start_cli(*args)
    wait_for_lines(journal_path(output), 100, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=DEADLINE)

    assert proc.returncode == 1, stderr
    assert "SIGTERM: stopping" in stderr
    assert "a rerun of the same command retries" in stderr
    report = assert_complete(output, ids)
    left = report["error_code"] == "NotAttempted"
    assert left.sum() > 0
    assert report.loc[~left, "status"].notna().all()
    assert journal_path(output).exists()

    ran = run_cli(*args)
    assert ran.code == 0, ran.stderr
    assert assert_complete(output, ids)["status"].notna().all()
    ok = ok_counts(emulator)
    done = settled_ids(emulator, ids)
    assert all(ok[sid] == 1 for sid in done), "an orderly stop refetches no settled session"


def test_time_budget_stops_in_order(emulator: EmulatorThread, tmp_path: Path) -> None:
    emulator.configure(latency=0.05)
    ids, source, output = prepare(emulator, tmp_path, 400)
    # 400 calls of 50 ms, 2 at a time, take 10 s at least: the budget ends the run first
    ran = run_cli("run", source, "--output", output, "--concurrency", "2", "--time-budget", "1s")
    assert ran.code == 1
    assert "time budget of 1s used up" in ran.stderr
    report = assert_complete(output, ids)
    assert (report["error_code"] == "NotAttempted").sum() > 0


@pytest.mark.parametrize("text", ["0", "-5m", "soon", "5x"])
def test_bad_time_budget_exits_2(emulator: EmulatorThread, tmp_path: Path, text: str) -> None:
    _, source, output = prepare(emulator, tmp_path, 3)
    ran = run_cli("run", source, "--output", output, "--time-budget", text)
    assert ran.code == 2
    assert "--time-budget" in ran.stderr


def test_a_second_run_on_the_same_report_is_refused(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    _, source, output = prepare(emulator, tmp_path, 3)
    with RunLock(output):
        ran = run_cli("run", source, "--output", output)
    assert ran.code == 2
    assert "another liveness-audit run" in ran.stderr
    assert emulator.stats()["requests"] == 0
    assert not output.exists()


def test_a_checkpoint_of_another_input_is_merged_and_the_report_keeps_both_inputs(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids, source, output = prepare(emulator, tmp_path, 10)
    emulator.script(ids[0], ["server_error"] * 2)
    assert run_cli("run", source, "--output", output, "--max-attempts", "2").code == 1
    assert journal_path(output).exists()
    other = tmp_path / "other.csv"
    write_input(other, ids[:5])

    ran = run_cli("run", other, "--output", output)

    assert ran.code == 0, ran.stderr
    report = assert_complete(output, ids)  # the first input's answers are all still there
    assert report["status"].notna().all()
    ok = ok_counts(emulator)
    assert all(ok[sid] == 1 for sid in settled_ids(emulator, ids))


def test_rerun_after_exit_1_fetches_only_the_unresolved(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids, source, output = prepare(emulator, tmp_path, 50)
    stuck = ids[7]
    emulator.script(stuck, ["server_error"] * 2)
    assert run_cli("run", source, "--output", output, "--max-attempts", "2").code == 1
    assert run_cli("run", source, "--output", output, "--max-attempts", "2").code == 0
    ok = ok_counts(emulator)
    assert all(ok[sid] == 1 for sid in settled_ids(emulator, ids))
    report = assert_complete(output, ids)
    assert report.set_index("session_id").loc[stuck, "attempts"] == 1


def test_an_endpoint_down_for_everything_ends_the_run_early(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVENESS_AUDIT_ABORT_AFTER_FAILURES", "6")
    ids, source, output = prepare(emulator, tmp_path, 300)
    ran = run_cli(
        "run",
        source,
        "--output",
        output,
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--concurrency",
        "2",
        "--max-attempts",
        "5",
    )
    assert ran.code == 1
    assert "failed 6 calls in a row" in ran.stderr
    report = assert_complete(output, ids)
    assert (report["error_code"] == "NotAttempted").sum() >= 290
    assert report["attempts"].sum() <= 6 + 2


def test_a_second_signal_stops_at_once_keeping_what_was_done(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(latency=0.2)
    ids, source, output = prepare(emulator, tmp_path, 400)
    proc = start_cli("run", source, "--output", output, "--concurrency", "4")
    done = wait_for_lines(journal_path(output), 8, proc)
    emulator.configure(latency=30.0)  # calls started from now on hang
    hanging = emulator.stats()["requests"] + 4
    wait_until(lambda: emulator.stats()["requests"] >= hanging)
    proc.send_signal(signal.SIGINT)
    assert proc.stderr is not None
    for line in proc.stderr:  # signals do not queue: send the second after the first landed
        if "SIGINT: stopping" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 1, stderr
    assert "SIGINT again: stopping at once" in stderr
    report = assert_complete(output, ids)
    assert report["status"].notna().sum() >= done


def wait_until(condition: Callable[[], bool]) -> None:
    limit = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > limit:
            pytest.fail("condition never became true")
        time.sleep(0.01)
