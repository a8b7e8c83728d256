"""Crash-safe progress: an append-only journal next to the report, and a run lock.

The journal ``REPORT.journal`` is JSON lines. The first line (the header) says what
shaped the rows: the input (SHA-256, column, format) and the settings a row depends on
(``verify_evidence``, ``save_images``, ``endpoint_url``, ``region``). Every further line
is the report row of one answer the run received (pending ones too: an ``IN_PROGRESS``
beats nothing), merged by :mod:`batch.store.ledger` when replayed. Each line is flushed to
the OS as it is written (so ``kill -9`` loses nothing that finished) and fsync'd at least
every second or every 100 rows (so a machine crash loses at most that).

The journal of a run is made with its first answer: a run that stops before one (no
region, no credentials, bad input) leaves no journal behind, and no lock file either
(:class:`RunLock` removes its file as it releases it).

A rerun of the same command replays the journal into its ledger. A torn last line (the
process died mid-write) is cut off; damage anywhere else is refused with a clear message.
A journal whose header differs in a setting named in ``must_match`` (endpoint, region:
rows of another service) is refused, naming the setting and both values; any other
difference (another input, evidence or image saving turned on) is not: its rows are
answers, the run merges them, and the header is rewritten for this run
(:attr:`Journal.previous` keeps the old one). Once a report holding every row is
committed the rows are dropped (:meth:`Journal.reset`); the journal itself is removed when
the run left nothing to ask and its report is committed (and uploaded).

A write or fsync that fails (a full disk, an I/O error; the fsync's on the helper thread
too) raises :class:`~batch.errors.StorageError` at the next append or close; nothing is
appended after it, so the journal stays sound and the rerun resumes from it.

:class:`RunLock` keeps two runs off the same report: an exclusive ``flock`` on
``.REPORT.lock``, which the kernel releases when the process dies, so a crashed run never
leaves it stuck.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Self

import orjson
import pyarrow as pa

from batch.errors import CheckpointError, OutputError, StorageError
from batch.store.encoding import json_default
from batch.store.files import PRIVATE, atomic_write, open_private, storage_error
from batch.store.row import SCHEMA, Row

__all__ = ["Journal", "RunLock", "journal_path", "read_journal"]

_VERSION = 2
_READABLE = (1, 2)  # version 1 headers named the input only
_SYNC_ROWS = 100
_SYNC_SECONDS = 1.0
_CHECK_ROWS = 1000  # journal rows checked against the report's schema at a time
# what converting a row that does not fit the schema raises (pyarrow, Row.from_flat, _row)
_UNFIT = (pa.ArrowException, TypeError, ValueError, AttributeError, KeyError)


def journal_path(report: Path) -> Path:
    return report.with_name(report.name + ".journal")


class Journal:
    """Append finished rows; replay them after a stop. Use :meth:`open`.

    Appends are flushed to the OS at once; fsync runs on a helper thread (every second,
    or as soon as 100 rows wait) so a slow disk never stalls the event loop's pacing.
    """

    def __init__(
        self,
        path: Path,
        file: IO[str] | None,
        *,
        replay_end: int,
        sync: Callable[[int], None] | None = None,
        previous: Mapping[str, object] | None = None,
        header: Mapping[str, object] | None = None,
        mode: int = PRIVATE,
    ) -> None:
        self.path = path
        self.previous = dict(previous) if previous is not None else None
        self._file = file
        self._replay_end = replay_end
        self._sync = sync or os.fsync  # a test passes a failing one
        self._failure: StorageError | None = None  # the first failed write or fsync
        self._unsynced = 0
        self._wake = threading.Event()
        self._closing = False
        self._header = dict(header or {})  # written with the first row (a lazy journal)
        self._mode = mode
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        if file is not None:
            self._syncer.start()

    @classmethod
    def open(
        cls,
        path: Path,
        header: Mapping[str, object],
        *,
        must_match: Iterable[str] = (),
        mode: int = PRIVATE,
        sync: Callable[[int], None] | None = None,
        lazy: bool = False,
    ) -> Journal:
        """Open (or start) the journal of a run whose rows are shaped by ``header``.

        A symlink or anything but a regular file at ``path`` is refused (OutputError); a
        journal whose header differs in a key of ``must_match`` is refused
        (CheckpointError naming the setting and both values). ``lazy``: no journal is
        made until the first row (a run that stops before an answer leaves none).
        """
        if lazy and not os.path.lexists(path):
            return cls(path, None, replay_end=0, sync=sync, header=header, mode=mode)
        sync = sync or os.fsync
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
        fd = open_private(path, flags, what="checkpoint", mode=mode)
        file = os.fdopen(fd, "a+", encoding="utf-8")
        try:
            file.seek(0)
            found = _check(path, file)
            previous = None
            if found is None:  # new (or empty) journal: write the header
                file.truncate(0)
                file.write(_header_line(header))
                file.flush()
                sync(file.fileno())
                end = file.tell()
            else:
                end, previous = found
                file.truncate(end)  # drop a torn last line before appending after it
                _refuse_other(path, previous, header, must_match)
                if any(previous.get(k) != v for k, v in header.items()):
                    file.close()
                    end = _rewrite_header(path, header, end, mode=mode)
                    fd = open_private(path, flags, what="checkpoint", mode=mode)
                    file = os.fdopen(fd, "a+", encoding="utf-8")
        except OSError as exc:
            with contextlib.suppress(OSError):
                file.close()
            raise storage_error("checkpoint", path, exc) from None
        except BaseException:
            file.close()
            raise
        return cls(path, file, replay_end=end, sync=sync, previous=previous)

    def replay(self) -> Iterator[Row]:
        """The rows journaled by earlier runs, in order, parsed by their declared types
        (:meth:`~batch.store.row.Row.from_flat`: a journal of an earlier version reads the
        same: the lines are a row's columns as JSON).

        Rows are checked against the report's schema a chunk at a time: a row that could
        not be written to the report (a journal from a damaged disk, or edited) raises
        :class:`CheckpointError` naming the journal and the line, never a traceback at
        the report's next flush.
        """
        chunk: list[tuple[int, object]] = []
        if self._replay_end == 0:
            return  # a lazy journal not made yet: nothing earlier
        with self.path.open(encoding="utf-8") as f:
            f.readline()  # header
            number = 1
            while f.tell() < self._replay_end:
                line = f.readline()
                if not line:
                    break
                number += 1
                chunk.append((number, json.loads(line)))
                if len(chunk) >= _CHECK_ROWS:
                    yield from self._checked(chunk)
                    chunk = []
        yield from self._checked(chunk)

    def _checked(self, chunk: list[tuple[int, object]]) -> list[Row]:
        try:
            rows = [_row(value) for _, value in chunk]
            _fits(rows)
        except _UNFIT:
            for number, value in chunk:  # find the first row that does not fit
                try:
                    _fits([_row(value)])
                except _UNFIT as exc:
                    raise CheckpointError(
                        f"checkpoint {self.path} line {number} holds a row the report cannot "
                        f"take ({type(exc).__name__}: {str(exc)[:120]}); repair or move it "
                        "away"
                    ) from None
            raise  # the chunk failed but no single row did: not the rows' fault
        return rows

    def append(self, row: Row, columns: Mapping[str, object] | None = None) -> None:
        """Journal one finished row; :class:`StorageError` once a write or fsync failed.

        ``columns``: the row's base columns (``row.flat(extras=False)``) when the caller
        has them already (the spill takes the same). After a failure nothing more is
        appended (a line after a torn one would damage the journal for good); the lines
        before it are kept for the rerun.
        """
        if self._failure is not None:  # an earlier write, or the fsync thread, failed
            raise self._failure
        values = row.flat(extras=False) if columns is None else columns
        line = _line(values)
        try:
            if self._file is None:
                self._file = self._create()
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            self._failure = storage_error("checkpoint", self.path, exc)
            raise self._failure from None
        self._unsynced += 1
        if self._unsynced >= _SYNC_ROWS:
            self._wake.set()

    def sync_now(self) -> None:
        """Flush and fsync now (not within the second): what follows depends on these
        rows being on disk. StorageError if that (or an earlier write) failed."""
        if self._failure is not None:
            raise self._failure
        if self._file is None or self._file.closed:
            return
        try:
            self._file.flush()
            self._sync(self._file.fileno())
        except OSError as exc:
            self._failure = storage_error("checkpoint", self.path, exc)
            raise self._failure from None
        self._unsynced = 0

    def _create(self) -> IO[str]:
        """The lazy journal's file, made with its header at the first row."""
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        fd = open_private(self.path, flags, what="checkpoint", mode=self._mode)
        file = os.fdopen(fd, "a+", encoding="utf-8")
        try:
            file.write(_header_line(self._header))
            file.flush()
            self._sync(file.fileno())
        except BaseException:
            file.close()
            raise
        self._file = file
        self._syncer.start()
        return file

    def reset(self) -> None:
        """Drop the rows, keep the header: a committed report holds them now (replaying
        them into it again would count their checks twice)."""
        if self._file is None:
            return
        self._file.flush()
        with self.path.open("rb") as f:
            end = len(f.readline())
        self._file.truncate(end)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._replay_end = end
        self._unsynced = 0

    def _sync_loop(self) -> None:
        assert self._file is not None  # started once the file exists
        fd = self._file.fileno()
        while not self._closing:
            self._wake.wait(_SYNC_SECONDS)
            self._wake.clear()
            if self._unsynced:
                self._unsynced = 0
                try:
                    self._sync(fd)
                except OSError as exc:  # heard by the run at its next append or close
                    self._failure = storage_error("checkpoint", self.path, exc)
                    return

    def close(self, *, remove: bool = False, quiet: bool = False) -> None:
        """Flush, fsync and close (and ``remove``) the journal.

        :class:`StorageError` if that (or an fsync before it) failed, unless ``quiet``:
        cleanup after another error must never hide that error.
        """
        if self._file is None or self._file.closed:
            return
        self._closing = True
        self._wake.set()
        self._syncer.join()
        failure = self._failure
        if failure is None:
            try:
                self._file.flush()
                self._sync(self._file.fileno())
            except OSError as exc:
                failure = storage_error("checkpoint", self.path, exc)
        with contextlib.suppress(OSError):  # its flush fails again if the first one did
            self._file.close()
        if remove:
            self.path.unlink(missing_ok=True)
        elif failure is not None and not quiet:
            raise failure


def read_journal(path: Path) -> list[Row]:
    """The rows of the journal at ``path``, whatever its header (``--merge-journal``);
    CheckpointError when it is missing or no journal of this tool."""
    try:
        with path.open(encoding="utf-8") as f:
            found = _check(path, f)
    except OSError as exc:
        raise CheckpointError(f"cannot read --merge-journal {path}: {exc.strerror}") from None
    if found is None:
        return []
    return list(Journal(path, None, replay_end=found[0]).replay())


def _row(value: object) -> Row:
    if not isinstance(value, dict):
        raise TypeError(f"a row must be a JSON object, got {type(value).__name__}")
    return Row.from_flat(value)


def _fits(rows: list[Row]) -> None:
    """The rows go into the report's columns (what Arrow refuses raises)."""
    pa.RecordBatch.from_pylist([row.flat(extras=False) for row in rows], schema=SCHEMA)


def _line(values: Mapping[str, object]) -> str:
    """A row's JSON line, compact, made by orjson (a tenth of ``json.dumps``'s CPU; the
    same text for a row's values, but UTF-8 where ``json.dumps`` escapes to ASCII)."""
    return orjson.dumps(values, default=json_default, option=orjson.OPT_APPEND_NEWLINE).decode()


def _header_line(header: Mapping[str, object]) -> str:
    return json.dumps({"journal": "liveness-audit", "version": _VERSION, **header}) + "\n"


def _refuse_other(
    path: Path, previous: Mapping[str, object], header: Mapping[str, object], keys: Iterable[str]
) -> None:
    """CheckpointError when the journal was written under another value of ``keys``."""
    for key in keys:
        if key in previous and previous[key] != header.get(key):
            raise CheckpointError(
                f"checkpoint {path} was written with another {key} ({previous[key]!r}, now "
                f"{header.get(key)!r}): its answers came from another service; rerun with "
                f"the same {key}, or, if both are the same service, add --merge-journal "
                f"{path} to merge its answers into this run (never delete it: its rows are "
                "answers)"
            )


def _rewrite_header(path: Path, header: Mapping[str, object], end: int, *, mode: int) -> int:
    """Put ``header`` on the journal's first line, keeping its rows; the new end offset."""
    with path.open("rb") as f:
        f.readline()
        rows = f.read(max(0, end - f.tell()))
    line = _header_line(header).encode()
    with atomic_write(path, mode=mode, what="checkpoint") as out:
        out.write(line)
        out.write(rows)
    return len(line) + len(rows)


def _check(path: Path, file: IO[str]) -> tuple[int, dict[str, object]] | None:
    """Validate an existing journal: the offset after its last complete line, its header."""
    header_line = file.readline()
    if not header_line.endswith("\n"):
        return None  # empty, or died while writing the header: start it anew
    try:
        header = json.loads(header_line)
    except json.JSONDecodeError:
        raise CheckpointError(
            f"{path} is not a liveness-audit checkpoint; move it away (it is not this tool's)"
        ) from None
    if (
        not isinstance(header, dict)
        or header.get("journal") != "liveness-audit"
        or header.get("version") not in _READABLE
    ):
        raise CheckpointError(f"{path} is not a checkpoint of this version; move it away")
    end = file.tell()
    number = 1
    while line := file.readline():
        number += 1
        if not line.endswith("\n"):
            break  # a torn last line: the process died while writing it
        try:
            json.loads(line)
        except json.JSONDecodeError:
            raise CheckpointError(
                f"checkpoint {path} is damaged at line {number}: repair or move it away "
                "(its good lines are answers: move, do not delete)"
            ) from None
        end = file.tell()
    return end, header


class RunLock:
    """An exclusive lock on a report for the life of a run; released if the process dies."""

    def __init__(self, report: Path, *, mode: int = PRIVATE) -> None:
        self.report = report
        self.path = report.with_name(f".{report.name}.lock")
        self._mode = mode
        self._fd: int | None = None

    def __enter__(self) -> Self:
        # never through a symlink: a planted one would have the lock truncate its target
        while True:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT, what="lock", mode=self._mode)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(
                    f"another liveness-audit run (pid {holder}) is writing {self.report}; "
                    "wait for it to finish"
                ) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed it as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Remove the lock file, then release: a run leaves no trace (one that opened the
        old file meanwhile sees it was removed, and locks a new one)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if _same_file(self._fd, self.path):
                    self.path.unlink()
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    """``fd`` is still the file at ``path`` (not removed or replaced since it was opened)."""
    try:
        here = path.lstat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
