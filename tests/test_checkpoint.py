"""The checkpoint journal and the run lock, on their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch.errors import CheckpointError, OutputError
from batch.model import Status
from batch.store.checkpoint import Journal, RunLock, journal_path
from batch.store.row import Row

ID = {"input_sha256": "abc", "input_column": "session_id", "input_format": "csv"}


def row(n: int) -> Row:
    return Row(f"s{n}", status=Status.SUCCEEDED, fetched_at=datetime.now(UTC))


def test_rows_survive_a_reopen_in_order(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "r.parquet")
    journal = Journal.open(path, ID)
    for n in range(3):
        journal.append(row(n))
    journal.close()
    again = Journal.open(path, ID)
    rows = list(again.replay())
    assert [r.session_id for r in rows] == ["s0", "s1", "s2"]
    assert isinstance(rows[0].fetched_at, datetime)
    again.close(remove=True)
    assert not path.exists()


def test_rows_are_on_disk_as_soon_as_appended(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal.open(path, ID)
    journal.append(row(1))
    # Another reader (a rerun after kill -9) sees the row without close() or sync().
    assert path.read_text().count("\n") == 2
    journal.close()


def test_a_torn_last_line_is_cut_off_and_appending_continues(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal.open(path, ID)
    journal.append(row(1))
    journal.close()
    with path.open("a") as f:
        f.write('{"session_id": "s2", "sta')  # died mid-write
    journal = Journal.open(path, ID)
    assert [r.session_id for r in journal.replay()] == ["s1"]
    journal.append(row(3))
    journal.close()
    journal = Journal.open(path, ID)
    assert [r.session_id for r in journal.replay()] == ["s1", "s3"]
    journal.close()


def test_damage_in_the_middle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal.open(path, ID)
    journal.append(row(1))
    journal.close()
    with path.open("a") as f:
        f.write("garbage\n")
        f.write('{"session_id": "s3"}\n')
    with pytest.raises(CheckpointError, match="damaged at line 3: repair or move it away"):
        Journal.open(path, ID)


def test_a_journal_of_another_input_is_kept_and_its_header_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal.open(path, ID)
    journal.append(row(1))
    journal.close()
    other = {**ID, "input_sha256": "def", "verify_evidence": True}

    again = Journal.open(path, other)

    assert again.previous is not None
    assert again.previous["input_sha256"] == "abc"
    assert [r.session_id for r in again.replay()] == ["s1"]  # its answers are kept
    again.append(row(2))
    again.close()
    reopened = Journal.open(path, other)
    assert reopened.previous is not None
    assert reopened.previous["input_sha256"] == "def"
    assert [r.session_id for r in reopened.replay()] == ["s1", "s2"]
    reopened.close()


@pytest.mark.parametrize("setting", ["endpoint_url", "region"])
def test_a_journal_of_another_endpoint_or_region_is_refused_naming_both_values(
    tmp_path: Path, setting: str
) -> None:
    path = tmp_path / "j"
    Journal.open(path, {**ID, setting: "one"}, must_match=[setting]).close()
    with pytest.raises(CheckpointError, match=rf"another {setting} \('one', now 'two'\)"):
        Journal.open(path, {**ID, setting: "two"}, must_match=[setting])
    assert Journal.open(path, {**ID, setting: "one"}, must_match=[setting]).previous


def test_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j"
    path.write_text('{"something": "else"}\n')
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        Journal.open(path, ID)


def test_lock_keeps_a_second_run_out_and_is_released(tmp_path: Path) -> None:
    report = tmp_path / "r.parquet"
    with RunLock(report), pytest.raises(OutputError, match=f"pid {os.getpid()}.*wait for it"):
        RunLock(report).__enter__()
    with RunLock(report):
        pass


def test_lock_of_a_killed_run_is_not_stuck(tmp_path: Path) -> None:
    report = tmp_path / "r.parquet"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from batch.store.checkpoint import RunLock\n"
            f"lock = RunLock(Path({str(report)!r})).__enter__()\n"
            "print('locked', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(OutputError):
        RunLock(report).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert holder.stdin is not None
    holder.stdin.close()
    with RunLock(report):
        pass
