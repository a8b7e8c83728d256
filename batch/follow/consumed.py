"""Which source files were consumed: JSON lines in the service's state folder.

A file is *consumed* once every new session ID in it has a journaled answer (or the file
was rejected as bad input): a restart reads again every file not consumed, and skips the
sessions in it that already have a settled answer, so it neither misses a file dropped
while it was down nor asks twice for a session already settled.

Lines are ``{"name": ..., "state": "done" | "rejected", "id": IDENTITY, "at": TIME}``
(the file's identity when it was read: ``size:mtime_ns:inode``, or an object's ETag; a
file whose identity changed since is read again), and for an S3 source
``{"after": KEY}``: every key up to it is consumed, so the listing restarts after it and
the names before it can be forgotten. For a folder, names of files that left the folder
are forgotten; for an SQS source, names older than the queue's longest retention. The
file is rewritten (atomically) when it holds mostly forgotten lines, so both it and the
memory it takes stay flat however long the service runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from batch.store.files import PRIVATE, atomic_write, open_private

__all__ = ["Consumed"]

_COMPACT_MIN = 1000


class Consumed:
    """The consumed (or rejected) files of a source; ``after`` its S3 watermark."""

    def __init__(self, path: Path, *, mode: int = PRIVATE) -> None:
        self.path = path
        self._mode = mode
        self.after: str | None = None
        self._names: dict[str, str] = {}
        self._ids: dict[str, str | None] = {}  # name -> identity when read (None: unknown)
        self._at: dict[str, float] = {}  # name -> when it was recorded (POSIX seconds)
        self._lines = 0
        if path.exists():
            self._load()
        self._rewrite()
        self._file: IO[str] = self._open()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line: its file is read again
                if "after" in entry:
                    self.after = str(entry["after"])
                elif "name" in entry:
                    name = str(entry["name"])
                    self._names[name] = str(entry.get("state", "done"))
                    known = entry.get("id")
                    self._ids[name] = None if known is None else str(known)
                    self._at[name] = float(entry.get("at") or time.time())
        self._drop_before_watermark()

    def _open(self) -> IO[str]:
        fd = open_private(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, what="state", mode=self._mode
        )
        return os.fdopen(fd, "a", encoding="utf-8")

    def _drop_before_watermark(self) -> None:
        if self.after is not None:
            after = self.after
            self._names = {k: v for k, v in self._names.items() if k > after}
            self._ids = {k: v for k, v in self._ids.items() if k in self._names}
            self._at = {k: v for k, v in self._at.items() if k in self._names}

    def _rewrite(self) -> None:
        with atomic_write(self.path, mode=self._mode, what="consumed files record") as f:
            if self.after is not None:
                f.write((json.dumps({"after": self.after}) + "\n").encode())
            for name, state in self._names.items():
                at = round(self._at.get(name, time.time()), 3)
                line = {"name": name, "state": state, "id": self._ids.get(name), "at": at}
                f.write((json.dumps(line) + "\n").encode())
        self._lines = len(self._names) + 1

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def state(self, name: str) -> str | None:
        return self._names.get(name)

    def identities(self) -> dict[str, str | None]:
        """Each consumed name and its identity when read (None: any content)."""
        return {name: self._ids.get(name) for name in self._names}

    def add(self, name: str, state: str = "done", identity: str | None = None) -> None:
        """Remember ``name`` (as it was: ``identity``) as consumed (``done``) or
        ``rejected``; durable at once."""
        self._names[name] = state
        self._ids[name] = identity
        self._at[name] = now = time.time()
        self._append({"name": name, "state": state, "id": identity, "at": round(now, 3)})

    def advance(self, after: str) -> None:
        """Every S3 key up to ``after`` is consumed: forget their names."""
        self.after = after
        self._drop_before_watermark()
        self._append({"after": after})

    def keep_only(self, present: Iterable[str]) -> None:
        """Forget the files no longer in the folder (they cannot come back as new)."""
        here = set(present)
        self._names = {k: v for k, v in self._names.items() if k in here}
        self._ids = {k: v for k, v in self._ids.items() if k in here}
        self._at = {k: v for k, v in self._at.items() if k in here}
        self._maybe_compact()

    def forget_before(self, seconds: float) -> None:
        """Forget names recorded more than ``seconds`` ago (an SQS source: a message is
        never redelivered after the queue's retention period, 14 days at most)."""
        horizon = time.time() - seconds
        old = [name for name, at in self._at.items() if at < horizon]
        for name in old:
            self._names.pop(name, None)
            self._ids.pop(name, None)
            del self._at[name]
        if old:
            self._maybe_compact()

    def _append(self, entry: dict[str, str | float | None]) -> None:
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._lines += 1
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        if self._lines > max(_COMPACT_MIN, 2 * len(self._names)):
            self._file.close()
            self._rewrite()
            self._file = self._open()

    def close(self) -> None:
        self._file.close()
