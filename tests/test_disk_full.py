"""A disk that fills up mid-run: the run stops in good order, exit 1, and resumes later.

Two ways in: a real size-limited file system (a 2 MiB tmpfs, where the machine lets the
tests mount one) under the whole command, and a fault injected at the file layer (a
plain wrapper file passed into the journal and the report writer, an fsync passed in).
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import pytest

from batch.emulator import EmulatorThread, write_input
from batch.errors import StorageError
from batch.store.checkpoint import Journal, journal_path
from batch.store.files import AtomicFile
from batch.store.inputs import InvalidId
from batch.store.ledger import settled as settled_row
from batch.store.report import ReportWriter, invalid_row
from batch.store.row import Row
from tests.helpers import assert_exactly_as_served, read_report, run_cli, the_error_line, tmpfs

ENOSPC = "ENOSPC: No space left on device"
IDENTITY = {"input_sha256": "0" * 64, "input_column": "session_id", "input_format": "csv"}


def full_disk() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullFile:
    """A file that takes ``room`` more bytes (or characters), then fails as a full disk does.

    The write that overflows writes what fits first, as a short write on a real disk does:
    a torn last line is left behind.
    """

    def __init__(self, file: Any, room: int) -> None:
        self._file = file
        self.room = room

    def write(self, data: Any) -> int:
        if len(data) > self.room:
            self._file.write(data[: self.room])
            self._file.flush()
            self.room = 0
            raise full_disk()
        self.room -= len(data)
        return int(self._file.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class FullAtomicFile(AtomicFile):
    """The report's temporary file on a disk with ``room`` bytes left."""

    def __init__(self, target: Path, room: int) -> None:
        super().__init__(target, what="report")
        self.disk = FullFile(self.file, room)
        self.file = cast(BinaryIO, self.disk)  # a file to the writer, full at ``room``


def rows(n: int) -> list[Row]:
    return [
        invalid_row(InvalidId(f"cell-{i:05d}-" + "x" * 40, "not a session ID")) for i in range(n)
    ]


def until_full(write: Callable[[Row], None], items: list[Row]) -> tuple[int, StorageError]:
    """How many ``items`` were written before the StorageError, and that error."""
    for written, item in enumerate(items):
        try:
            write(item)
        except StorageError as error:
            return written, error
    raise AssertionError("the disk never filled up")


# --- faults injected at the file layer ---------------------------------------------------


def test_a_journal_write_on_a_full_disk_stops_appending_and_keeps_the_lines_before_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.parquet.journal"
    Journal.open(path, IDENTITY).close()
    file = path.open("a+", encoding="utf-8")
    journal = Journal(path, cast(IO[str], FullFile(file, 5000)), replay_end=path.stat().st_size)
    written, error = until_full(journal.append, rows(100))
    assert str(error).startswith(f"cannot write the checkpoint {path}: {ENOSPC}")
    assert "\n" not in str(error)
    assert error.path == str(path)
    with pytest.raises(StorageError):  # nothing after a torn line: the journal stays sound
        journal.append(rows(1)[0])
    journal.close(quiet=True)  # the cleanup after the error never raises another
    assert 0 < written < 100

    reopened = Journal.open(path, IDENTITY)  # the torn line is cut off, the rest replays
    assert [row.session_id for row in reopened.replay()] == [
        row.session_id for row in rows(written)
    ]
    reopened.close()


def test_an_fsync_that_fails_on_the_helper_thread_reaches_the_next_append_and_close(
    tmp_path: Path,
) -> None:
    failed = threading.Event()
    calls = 0

    def sync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:  # the header's fsync passes; the helper thread's fails
            failed.set()
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)

    path = tmp_path / "r.parquet.journal"
    journal = Journal.open(path, IDENTITY, sync=sync)
    for row in rows(100):  # 100 unsynced rows wake the fsync thread at once
        journal.append(row)
    assert failed.wait(timeout=30)
    with pytest.raises(StorageError, match=r"EIO: Input/output error"):
        journal.append(rows(1)[0])
    with pytest.raises(StorageError, match=str(path)):
        journal.close()


def test_a_close_whose_fsync_fails_says_so_unless_quiet(tmp_path: Path) -> None:
    def sync(fd: int) -> None:
        if os.fstat(fd).st_size > 200:  # the header passes, the rows do not
            raise full_disk()
        os.fsync(fd)

    for quiet in (False, True):
        path = tmp_path / f"{quiet}.journal"
        journal = Journal.open(path, IDENTITY, sync=sync)
        journal.append(rows(1)[0])
        if quiet:
            journal.close(quiet=True)
        else:
            with pytest.raises(StorageError, match=ENOSPC):
                journal.close()


def test_a_report_write_on_a_full_disk_raises_naming_the_file_and_leaves_no_temporary(
    tmp_path: Path,
) -> None:
    report = tmp_path / "r.parquet"
    file = FullAtomicFile(report, room=4096)
    writer = ReportWriter(report, batch_rows=5, file=file)
    _, error = until_full(writer.add, rows(2000))
    assert str(error).startswith(f"cannot write the report {file.tmp}: {ENOSPC}")
    with pytest.raises(StorageError):  # the file is in an unknown state: no more writes
        writer.commit({}, input_sha256="0" * 64)
    writer.abandon()  # the cleanup after the error never raises another
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_report_whose_commit_fails_leaves_the_old_report_untouched(tmp_path: Path) -> None:
    report = tmp_path / "r.parquet"
    report.write_bytes(b"yesterday")
    file = FullAtomicFile(report, room=10_000_000)
    writer = ReportWriter(report, batch_rows=1000, file=file)
    for row in rows(10):
        writer.add(row)
    file.disk.room = 100  # the disk fills up before the commit
    with pytest.raises(StorageError, match=ENOSPC):
        writer.commit({}, input_sha256="0" * 64)
    writer.abandon()
    assert report.read_bytes() == b"yesterday"
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]


# --- a real, small file system -----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs at ``tmp_path/disk``; skipped where the tests may not mount."""
    with tmpfs(tmp_path / "disk", "size=2m") as disk:
        yield disk


def fill(disk: Path, leave: int) -> Path:
    """A ballast file that leaves about ``leave`` bytes free on ``disk``."""
    info = os.statvfs(disk)
    ballast = disk / "ballast"
    ballast.write_bytes(b"\0" * max(0, info.f_bavail * info.f_frsize - leave))
    return ballast


def test_a_run_on_a_full_disk_exits_1_keeping_its_journal_and_resumes_after_space_is_freed(
    emulator: EmulatorThread, small_disk: Path, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:400])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = small_disk / "r.parquet"
    metrics = tmp_path / "metrics.prom"
    ballast = fill(small_disk, leave=64 * 1024)
    args = ("run", source, "--output", output, "--metrics-file", metrics)

    ran = run_cli(*args)

    assert ran.code == 1, ran.stderr
    error = the_error_line(ran.stderr)
    assert f"{small_disk}/" in error
    assert ENOSPC in error
    assert "rerun the same command to resume" in error
    assert "liveness_audit_exit_code 1" in metrics.read_text()
    assert not output.exists()
    journal = journal_path(output)
    kept = journal.read_text().split("\n")[1:-1]  # complete lines (a torn last one is cut)
    assert kept, "what was journaled before the disk filled is kept"
    assert [p.name for p in small_disk.iterdir() if p.name.endswith(".tmp")] == []

    ballast.unlink()
    again = run_cli(*args)

    assert again.code == 0, again.stderr
    report = read_report(output)
    assert sorted(report.index) == sorted(ids)
    assert_exactly_as_served(report, emulator, ids)
    rows = [Row.from_flat(json.loads(line)) for line in kept]
    resumed = {row.session_id for row in rows}
    assert resumed <= set(ids)
    # a settled answer is never asked again; a pending one (CREATED/IN_PROGRESS) is
    settled = {row.session_id for row in rows if settled_row(row)}
    assert settled, "some settled answers were journaled before the disk filled"
    ok = emulator.stats()["ok_by_session"]
    assert all(ok[sid] == 1 for sid in settled), "journaled sessions are not fetched again"
    assert not journal.exists()
