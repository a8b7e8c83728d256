"""``follow`` loses nothing its folder is given (issue 20, items 1, 2, 4 and 6).

Real CLI, real client, the emulator: a file replaced under the same name, a file written
in place by a writer that pauses mid-line, a duplicate file after a publish, and the
order in which answers and the consumed record reach the disk.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch.emulator import EmulatorThread
from tests.following import (
    captured,
    drop,
    follow_args,
    report_rows,
    stop,
    wait_until,
)
from tests.helpers import run_cli, start_cli


def _events(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _consumed(state: Path) -> str:
    files = list(state.glob("follow/*/consumed.jsonl"))
    return files[0].read_text() if files else ""


def test_a_file_replaced_under_the_same_name_is_read_again_and_the_replacement_logged(
    living: EmulatorThread, inbox: Path, tmp_path: Path
) -> None:
    report = tmp_path / "audit.parquet"
    proc = start_cli(*follow_args(inbox, report, tmp_path / "state"))
    first = living.create_sessions(10, start_after=0.0, finish_after=0.0)
    drop(inbox, "batch.csv", first)
    wait_until(lambda: captured(report, first), proc, "the first batch captured")
    wait_until(lambda: "batch.csv" in _consumed(tmp_path / "state"), proc, "consumed")
    second = living.create_sessions(10, start_after=0.0, finish_after=0.0)
    drop(inbox, "batch.csv", second)  # moved over the first: same name, new file
    wait_until(lambda: captured(report, second), proc, "the replacement captured")
    code, _, err = stop(proc)

    assert code == 0, err
    changed = [e for e in _events(err) if e["event"] == "file_changed"]
    assert [(e["file"], e["replaced"]) for e in changed] == [("batch.csv", True)]
    asked = living.stats()["by_session"]
    assert all(asked[sid] == 1 for sid in first + second)  # the first batch not asked again
    assert len(report_rows(report)) == 20


def test_a_file_written_in_place_by_a_writer_that_pauses_mid_line_is_read_whole(
    living: EmulatorThread, inbox: Path, tmp_path: Path
) -> None:
    report = tmp_path / "audit.parquet"
    proc = start_cli(*follow_args(inbox, report, tmp_path / "state"))
    ids = living.create_sessions(10, start_after=0.0, finish_after=0.0)
    state = tmp_path / "state"
    wait_until(lambda: any(state.glob("follow/*/consumed.jsonl")), proc, "the service up")
    path = inbox / "batch.csv"
    with path.open("w") as f:  # no temporary name: written where the service looks
        f.write("session_id\n" + "".join(f"{sid}\n" for sid in ids[:5]) + ids[5][:20])
        f.flush()
        time.sleep(2.5)  # the writer's pause (the scenario, not synchronisation)
        f.write(ids[5][20:] + "\n" + "".join(f"{sid}\n" for sid in ids[6:]))
    wait_until(lambda: captured(report, ids), proc, "all ten captured")
    code, _, err = stop(proc)

    assert code == 0, err
    rows = report_rows(report)
    assert sorted(rows.index) == sorted(ids)  # no row for a cut ID
    assert rows["error_code"].isna().all()
    asked = living.stats()["by_session"]
    assert all(asked[sid] == 1 for sid in ids)


def test_a_duplicate_file_after_a_publish_asks_no_settled_session_again(
    living: EmulatorThread, inbox: Path, tmp_path: Path
) -> None:
    report = tmp_path / "audit.parquet"
    state = tmp_path / "state"
    proc = start_cli(*follow_args(inbox, report, state))
    ids = living.create_sessions(9, start_after=0.0, finish_after=0.0)
    drop(inbox, "a.csv", ids)
    wait_until(lambda: captured(report, ids), proc, "captured and published")
    drop(inbox, "a-again.csv", ids)  # the application sent the same batch twice
    wait_until(lambda: "a-again.csv" in _consumed(state), proc, "the duplicate consumed")
    code, _, err = stop(proc)

    assert code == 0, err
    asked = living.stats()["by_session"]
    assert [asked[sid] for sid in ids] == [1] * 9
    end = next(e for e in _events(err) if e["event"] == "end")
    assert end["sessions_asked"] == 9  # sessions, not requests
    assert end["captured"] == 9
    assert report_rows(report).loc[ids, "checks"].tolist() == [1] * 9


def test_after_a_restart_the_days_report_says_which_sessions_are_settled_not_asked_again(
    living: EmulatorThread, inbox: Path, tmp_path: Path
) -> None:
    """Published settled rows leave the day's journal: at a restart the report (read a
    batch at a time, three columns) is what says they are settled."""
    report = tmp_path / "audit.parquet"
    state = tmp_path / "state"
    ids = living.create_sessions(6, start_after=0.0, finish_after=0.0)
    proc = start_cli(*follow_args(inbox, report, state))
    drop(inbox, "a.csv", ids)
    wait_until(lambda: captured(report, ids), proc, "captured and published")
    assert stop(proc)[0] == 0
    proc = start_cli(*follow_args(inbox, report, state))
    drop(inbox, "a-again.csv", ids)  # the same batch, after the restart
    wait_until(lambda: "a-again.csv" in _consumed(state), proc, "the duplicate consumed")
    code, _, err = stop(proc)

    assert code == 0, err
    asked = living.stats()["by_session"]
    assert [asked[sid] for sid in ids] == [1] * 6


def test_answers_are_on_disk_before_their_file_is_recorded_consumed(
    living: EmulatorThread, inbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every fsync of consumed.jsonl finds each day journal fsync'd up to its end."""
    real = os.fsync
    synced: dict[str, int] = {}  # journal -> its size at its last fsync
    late: list[str] = []
    lock = threading.Lock()

    def recording_fsync(fd: int) -> None:
        real(fd)
        path = str(Path(f"/proc/self/fd/{fd}").readlink())
        with lock:
            if path.endswith(".journal"):
                synced[path] = os.fstat(fd).st_size
            elif path.endswith("consumed.jsonl"):
                for journal in (tmp_path / "state").glob("follow/*/journals/*.journal"):
                    if synced.get(str(journal), -1) < journal.stat().st_size:
                        late.append(f"{journal.name}: rows not on disk yet")

    monkeypatch.setattr(os, "fsync", recording_fsync)
    ids = living.create_sessions(40, start_after=0.0, finish_after=0.0)
    for n in range(4):
        drop(inbox, f"ids-{n}.csv", ids[n * 10 : (n + 1) * 10])
    args = follow_args(inbox, tmp_path / "audit.parquet", tmp_path / "state")
    ran = run_cli(*args, "--poll-interval", "0.2", "--time-budget", "15s")  # ample when loaded

    assert ran.code == 0, ran.stderr
    consumed = _consumed(tmp_path / "state")
    assert all(f"ids-{n}.csv" in consumed for n in range(4))
    assert late == []


def test_a_day_folder_that_cannot_be_made_is_a_publish_failure_kept_and_retried(
    living: EmulatorThread, inbox: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    template = str(out / "date={date}" / "audit.parquet")
    state = tmp_path / "state"
    proc = start_cli(*follow_args(inbox, template, state))
    wait_until(lambda: any(state.glob("follow/*/consumed.jsonl")), proc, "the service up")
    day = out / f"date={datetime.now(UTC):%Y-%m-%d}"
    day.write_text("a file where the day's folder goes")  # made after the start
    ids = living.create_sessions(5, start_after=0.0, finish_after=0.0)
    drop(inbox, "ids.csv", ids)
    wait_until(lambda: "ids.csv" in _consumed(state), proc, "every answer journaled")
    code, _, err = stop(proc)

    assert code == 1, err  # not published: 1, never 2 once answers are in hand
    assert "Traceback" not in err
    assert f"publishing {day / 'audit.parquet'} failed" in err

    day.unlink()
    again = start_cli(*follow_args(inbox, template, state))
    wait_until(lambda: captured(day / "audit.parquet", ids), again, "published at restart")
    code, _, err = stop(again)

    assert code == 0, err
    assert [living.stats()["by_session"][sid] for sid in ids] == [1] * 5  # from the journal
