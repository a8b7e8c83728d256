"""``liveness-audit follow`` against the emulator: sessions created as an application
creates them, ID files dropped into a folder, answers captured while they exist."""

from __future__ import annotations

import json
import time
from pathlib import Path

from batch.emulator import EmulatorThread
from tests.following import (
    RESULTS,
    captured,
    drop,
    follow_args,
    report_rows,
    stop,
    wait_until,
)
from tests.helpers import run_cli, start_cli


def test_finished_sessions_dropped_into_a_folder_are_captured_with_their_results(
    living: EmulatorThread, inbox: Path, tmp_path: Path
) -> None:
    report = tmp_path / "audit.parquet"
    proc = start_cli(*follow_args(inbox, report, tmp_path / "state"))
    ids: list[str] = []
    for n in range(8):  # a file of new sessions every second, as the application makes them
        new = living.create_sessions(3, start_after=1.0, finish_after=2.5)
        drop(inbox, f"ids-{n:03d}.csv", new)
        ids += new
        time.sleep(1.0)
    wait_until(lambda: captured(report, ids), proc, "every session captured")
    code, _, err = stop(proc)
    assert code == 0, err

    rows = report_rows(report)
    done = rows.loc[ids]
    assert (done["status"].isin(RESULTS)).mean() >= 0.99
    assert done["confidence"].notna().all()
    assert len(rows) == len(ids)  # one row per session, none lost or doubled
    asked = living.stats()["by_session"]
    # created, started at 1 s, finished at 2.5 s: asked on arrival, then every 1 s at most
    assert max(asked[sid] for sid in ids) <= 5
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(e["event"] == "published" for e in events)
    end = next(e for e in events if e["event"] == "end")
    assert end["captured"] == len(ids)
    assert end["files_seen"] == 8


def test_a_restart_after_kill_9_misses_no_file_and_asks_no_settled_session_again(
    living: EmulatorThread, inbox: Path, tmp_path: Path
) -> None:
    report = tmp_path / "audit.parquet"
    state = tmp_path / "state"
    first = living.create_sessions(6, start_after=0.0, finish_after=0.0)
    drop(inbox, "a.csv", first)
    proc = start_cli(*follow_args(inbox, report, state, "--publish-every", "1h"))
    journals = state / "follow"
    wait_until(
        lambda: (
            sum(
                p.read_text().count("SUCCEEDED") + p.read_text().count("FAILED")
                for p in journals.rglob("*.journal")
            )
            >= 6
        ),
        proc,
        "the first file's answers journaled",
    )
    proc.kill()  # kill -9: nothing published yet, only the journal holds the answers
    proc.communicate()
    assert not report.exists()
    second = living.create_sessions(4, start_after=0.0, finish_after=0.0)
    drop(inbox, "b.csv", second)  # dropped while the service was down
    drop(inbox, "c.csv", first[:3])  # the same sessions again: settled, not asked again
    asked_before = dict(living.stats()["by_session"])

    proc = start_cli(*follow_args(inbox, report, state))
    wait_until(lambda: captured(report, first + second), proc, "both files captured")
    code, _, err = stop(proc)
    assert code == 0, err
    asked = living.stats()["by_session"]
    assert all(asked[sid] == asked_before[sid] for sid in first)  # none asked again
    assert all(asked[sid] == 1 for sid in second)
    assert len(report_rows(report)) == 10


def test_bad_files_are_reported_once_and_set_aside_while_the_service_goes_on(
    living: EmulatorThread, inbox: Path, tmp_path: Path
) -> None:
    report = tmp_path / "audit.parquet"
    (inbox / "binary.csv").write_bytes(b"\x00\xff\xfe\x81" * 64)
    (inbox / "wrong.csv").write_text("user,when\nbob,today\n")
    (inbox / "notes.txt").write_text("hello\n")
    proc = start_cli(*follow_args(inbox, report, tmp_path / "state"))
    ids = living.create_sessions(3, start_after=0.0, finish_after=0.0)
    drop(inbox, "good.csv", ids)
    wait_until(lambda: captured(report, ids), proc, "the good file captured")
    code, _, err = stop(proc)
    assert code == 0, err
    rejected = [json.loads(line) for line in err.splitlines() if '"rejected"' in line]
    assert sorted(e["file"] for e in rejected) == ["binary.csv", "notes.txt", "wrong.csv"]
    assert "column 'session_id' not found" in next(
        e["reason"] for e in rejected if e["file"] == "wrong.csv"
    )
    assert "Traceback" not in err


def test_an_unreadable_source_at_start_is_a_usage_error(tmp_path: Path) -> None:
    ran = run_cli("follow", tmp_path / "missing", "--output", tmp_path / "r.parquet")
    assert ran.code == 2
    assert "SOURCE folder not found" in ran.stderr
