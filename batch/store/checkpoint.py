"""Crash-safe progress: an append-only journal next to the report, and a run lock.

The journal ``REPORT.journal`` is JSON lines. The first line names the input it belongs
to (SHA-256, column, format); every further line is the finished report row of one
session that has a **definitive** answer. Each line is flushed to the OS as it is written
(so ``kill -9`` loses nothing that finished) and fsync'd at least every second or every
100 rows (so a machine crash loses at most that).

A rerun of the same command replays the journal: its rows go straight into the new
report, and only the sessions not in it are fetched. Unresolved sessions are never
journaled, so they are retried. A torn last line (the process died mid-write) is cut off;
damage anywhere else, or a journal of another input, is refused with a clear message
(``--fresh`` starts over). After a run where every session is resolved the journal is
removed: the report holds everything.

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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Self

import pyarrow as pa

from batch.errors import CheckpointError, OutputError, StorageError
from batch.store.encoding import json_default, revive
from batch.store.files import PRIVATE, check_target, open_private, storage_error
from batch.store.report import SCHEMA

__all__ = ["Journal", "RunLock", "journal_path"]

_VERSION = 1
_SYNC_ROWS = 100
_SYNC_SECONDS = 1.0
_CHECK_ROWS = 1000  # journal rows checked against the report's schema at a time
# what converting a row that does not fit the schema raises (pyarrow, revive, _row)
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
        file: IO[str],
        *,
        replay_end: int,
        sync: Callable[[int], None] = os.fsync,
    ) -> None:
        self.path = path
        self._file = file
        self._replay_end = replay_end
        self._sync = sync  # os.fsync; a test passes a failing one
        self._failure: StorageError | None = None  # the first failed write or fsync
        self._unsynced = 0
        self._wake = threading.Event()
        self._closing = False
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        self._syncer.start()

    @classmethod
    def open(
        cls,
        path: Path,
        identity: Mapping[str, str],
        *,
        fresh: bool = False,
        mode: int = PRIVATE,
        sync: Callable[[int], None] = os.fsync,
    ) -> Journal:
        """Open (or start) the journal of a run of the input described by ``identity``.

        A symlink or anything but a regular file at ``path`` is refused (OutputError).
        """
        if fresh:
            check_target(path, "checkpoint")
            path.unlink(missing_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
        fd = open_private(path, flags, what="checkpoint", mode=mode)
        file = os.fdopen(fd, "a+", encoding="utf-8")
        try:
            file.seek(0)
            end = _check(path, file, identity)
            if end is None:  # new (or empty) journal: write the header
                file.truncate(0)
                file.write(
                    json.dumps({"journal": "liveness-audit", "version": _VERSION, **identity})
                )
                file.write("\n")
                file.flush()
                sync(file.fileno())
                end = file.tell()
            else:
                file.truncate(end)  # drop a torn last line before appending after it
        except OSError as exc:
            with contextlib.suppress(OSError):
                file.close()
            raise storage_error("checkpoint", path, exc) from None
        except BaseException:
            file.close()
            raise
        return cls(path, file, replay_end=end, sync=sync)

    def replay(self) -> Iterator[dict[str, Any]]:
        """The rows journaled by earlier runs, in order, revived (datetimes again).

        Rows are checked against the report's schema a chunk at a time: a row that could
        not be written to the report (a journal from a damaged disk, or edited) raises
        :class:`CheckpointError` naming the journal and the line, never a traceback at
        the report's next flush.
        """
        chunk: list[tuple[int, Any]] = []
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

    def _checked(self, chunk: list[tuple[int, Any]]) -> list[dict[str, Any]]:
        try:
            rows = [_row(value) for _, value in chunk]
            pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
        except _UNFIT:
            for number, value in chunk:  # find the first row that does not fit
                try:
                    pa.RecordBatch.from_pylist([_row(value)], schema=SCHEMA)
                except _UNFIT as exc:
                    raise CheckpointError(
                        f"checkpoint {self.path} line {number} holds a row the report cannot "
                        f"take ({type(exc).__name__}: {str(exc)[:120]}); move it away or "
                        "pass --fresh to start over"
                    ) from None
            raise  # the chunk failed but no single row did: not the rows' fault
        return rows

    def append(self, row: Mapping[str, Any]) -> None:
        """Journal one finished row; :class:`StorageError` once a write or fsync failed.

        After a failure nothing more is appended (a line after a torn one would damage
        the journal for good); the lines before it are kept for the rerun.
        """
        if self._failure is not None:  # an earlier write, or the fsync thread, failed
            raise self._failure
        line = json.dumps(row, default=json_default, separators=(",", ":")) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            self._failure = storage_error("checkpoint", self.path, exc)
            raise self._failure from None
        self._unsynced += 1
        if self._unsynced >= _SYNC_ROWS:
            self._wake.set()

    def _sync_loop(self) -> None:
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
        if self._file.closed:
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


def _row(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"a row must be a JSON object, got {type(value).__name__}")
    return revive(value)


def _check(path: Path, file: IO[str], identity: Mapping[str, str]) -> int | None:
    """Validate an existing journal; return the offset after its last complete line."""
    header_line = file.readline()
    if not header_line.endswith("\n"):
        return None  # empty, or died while writing the header: start it anew
    try:
        header = json.loads(header_line)
    except json.JSONDecodeError:
        raise CheckpointError(
            f"{path} is not a liveness-audit checkpoint; move it away or pass --fresh"
        ) from None
    if header.get("journal") != "liveness-audit" or header.get("version") != _VERSION:
        raise CheckpointError(f"{path} is not a checkpoint of this version; pass --fresh")
    for key, value in identity.items():
        if header.get(key) != value:
            raise CheckpointError(
                f"checkpoint {path} belongs to a run with another {key} "
                f"({header.get(key)!r}, now {value!r}); rerun with the same input to resume, "
                "or pass --fresh to start over"
            )
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
                f"checkpoint {path} is damaged at line {number}; pass --fresh to start over"
            ) from None
        end = file.tell()
    return end


class RunLock:
    """An exclusive lock on a report for the life of a run; released if the process dies."""

    def __init__(self, report: Path, *, mode: int = PRIVATE) -> None:
        self.report = report
        self.path = report.with_name(f".{report.name}.lock")
        self._mode = mode
        self._fd: int | None = None

    def __enter__(self) -> Self:
        # never through a symlink: a planted one would have the lock truncate its target
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
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
