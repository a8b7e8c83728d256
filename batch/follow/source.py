"""Where new ID files come from: a local folder, or an S3 prefix.

Both sources answer :meth:`ready` with the files that are complete and not consumed yet,
oldest first (their sessions expire first), as :class:`Found` entries:

- :class:`FolderSource` lists the folder; a file is ready once two looks at least
  ``settle_gap`` apart saw the same size, modification time and inode (a file renamed in
  is whole at once and passes at the second look; one still being written changes
  between them); a file whose last line has no newline yet must stay unchanged for
  ``unterminated_gap`` (a writer paused mid-ID). A consumed file is known by that
  identity, not its name: one that grew, or was replaced under the same name, is read
  again (logged), and only its new sessions are asked. Hidden files (``.name``) and
  ``*.tmp``/``*.part`` are left alone: writers use them before their rename.
  ``watchfiles`` (inotify, FSEvents, ...) wakes the service as soon as something
  changes; without it, or when the watch cannot start, the folder is listed every
  ``poll_interval``.
- :class:`S3Source` lists with ``ListObjectsV2`` from ``StartAfter`` a watermark that
  trails the newest key by ``lookback`` (5 minutes of ``LastModified``): keys grow with
  time, as Firehose's ``YYYY/MM/DD/HH/`` keys do, but one that sorts before the last key
  can become visible later (its upload completed later), and it is still listed. Objects
  are known by key + ETag: one overwritten with new content is read again. S3 objects are
  whole when they are listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from batch.aws.s3 import S3Store
from batch.errors import InputError, NotFoundError
from batch.logs import LOGGER, event
from batch.store.locations import Location, S3Url

__all__ = ["FolderSource", "Found", "S3Source", "Source"]

log = logging.getLogger(LOGGER)

_SKIPPED_SUFFIXES = (".tmp", ".part", ".partial", ".swp")
UNTERMINATED_GAP = 10.0  # s a file whose last line has no newline must stay unchanged
_TAIL = 256  # bytes read from a file's end to see how its last line ends
S3_LOOKBACK = 300.0  # s of LastModified an S3 listing looks back past its newest key


@dataclass(frozen=True, slots=True)
class Found:
    """A complete file of new IDs: its name (the consumed record's key), location, and
    identity when read (``size:mtime_ns:inode`` of a file, the ETag of an object): a
    consumed file whose identity changed is read again."""

    name: str
    location: Location
    order: tuple[float, str]  # oldest first: (modification time, name)
    identity: str | None = None


Taken = Mapping[str, str | None] | Iterable[str]  # consumed: name -> identity (None: any)


def _taken(consumed: Taken) -> dict[str, str | None]:
    if isinstance(consumed, Mapping):
        return dict(consumed)
    return dict.fromkeys(consumed)


def _changed(taken: dict[str, str | None], name: str, identity: str) -> bool | None:
    """None: not consumed; False: consumed as it is now; True: consumed, changed since."""
    if name not in taken:
        return None
    known = taken[name]
    return known is not None and known != identity


class Source(Protocol):
    """What the capture service needs of a source."""

    async def check(self) -> None: ...

    async def ready(self, consumed: Taken) -> list[Found]: ...

    async def wait(self, seconds: float) -> None: ...

    def done(self, found: Found) -> str | None: ...

    def close(self) -> None: ...


def _skipped(name: str) -> bool:
    return name.startswith(".") or name.endswith(_SKIPPED_SUFFIXES)


class FolderSource:
    """New files in a local folder (see the module docstring)."""

    def __init__(
        self,
        folder: Path,
        *,
        settle_gap: float = 0.5,
        watch: bool = True,
        unterminated_gap: float = UNTERMINATED_GAP,
    ) -> None:
        self.folder = folder
        self.settle_gap = settle_gap
        self.unterminated_gap = unterminated_gap
        self._looks: dict[str, tuple[str, float]] = {}  # name -> identity, seen at
        self._changed = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._watch = watch
        self.present: set[str] = set()  # names in the folder at the last look

    async def check(self) -> None:
        """InputError (exit 2) when the folder cannot be listed."""
        folder = self.folder
        if not folder.exists():
            raise InputError(f"SOURCE folder not found: {folder}")
        if not folder.is_dir():
            raise InputError(f"SOURCE is not a folder: {folder}")
        try:
            next(folder.iterdir(), None)
        except PermissionError:
            raise InputError(
                f"SOURCE folder is not readable (permission denied): {folder}"
            ) from None
        if self._watch and self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_folder())

    async def _watch_folder(self) -> None:
        try:
            from watchfiles import awatch  # noqa: PLC0415  # optional: listing works without it

            async for _ in awatch(self.folder, recursive=False, debounce=50, step=20):
                self._changed.set()
        except (ImportError, OSError, RuntimeError) as exc:
            log.info("no file-system watch on %s (%s); listing it instead", self.folder, exc)

    async def wait(self, seconds: float) -> None:
        """Until something changes in the folder, or ``seconds`` pass (shorter while a file
        waits for its second look)."""
        if any(True for _ in self._looks):
            seconds = min(seconds, self.settle_gap)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        self._changed.clear()

    async def ready(self, consumed: Taken) -> list[Found]:
        return await asyncio.to_thread(self._ready, _taken(consumed))

    def _ready(self, consumed: dict[str, str | None]) -> list[Found]:
        clock = time.monotonic()
        found: list[Found] = []
        present: set[str] = set()
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if _skipped(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                present.add(entry.name)
                stat = entry.stat(follow_symlinks=False)
                identity = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
                changed = _changed(consumed, entry.name, identity)
                if changed is False:
                    continue
                before = self._looks.get(entry.name)
                if before is None or before[0] != identity:
                    self._looks[entry.name] = (identity, clock)
                    if changed and before is None:
                        self._log_change(entry.name, consumed[entry.name], identity)
                elif clock - before[1] >= self._gap(Path(entry.path), stat.st_size):
                    order = (stat.st_mtime_ns / 1e9, entry.name)
                    found.append(Found(entry.name, Path(entry.path), order, identity))
        for name in set(self._looks) - present:
            del self._looks[name]  # deleted before it was read
        self.present = present
        return sorted(found, key=lambda f: f.order)

    def _gap(self, path: Path, size: int) -> float:
        """How long a file must stay unchanged: longer while its last line is cut (a
        writer that paused mid-line), so a partial ID is never read as one."""
        if size == 0:
            return self.settle_gap
        try:
            with path.open("rb") as f:
                f.seek(max(0, size - _TAIL))
                tail = f.read(_TAIL)
        except OSError:
            return self.settle_gap  # gone or unreadable: reading it says so
        if tail.endswith((b"\n", b"\r")) or b"\0" in tail:
            return self.settle_gap  # complete, or not text at all (rejected when read)
        return self.unterminated_gap

    def _log_change(self, name: str, before: str | None, now: str) -> None:
        replaced = before is not None and before.rsplit(":", 1)[-1] != now.rsplit(":", 1)[-1]
        log.info(
            "%s %s since it was read: reading it again (only its new sessions are asked)",
            name,
            "was replaced" if replaced else "changed",
            extra=event("file_changed", file=name, replaced=replaced),
        )

    def done(self, found: Found) -> str | None:
        self._looks.pop(found.name, None)
        return None

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


class S3Source:
    """New or changed objects under an S3 prefix (see the module docstring)."""

    def __init__(
        self,
        store: S3Store,
        prefix: S3Url,
        *,
        start_after: str | None,
        lookback: float = S3_LOOKBACK,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.lookback = lookback
        self.watermark = start_after  # every key up to it is consumed, and old
        self._listed: dict[str, float] = {}  # key -> LastModified, keys after the watermark
        self._done: set[str] = set()  # keys after the watermark consumed in this process

    async def check(self) -> None:
        """InputError (exit 2) when the bucket does not exist; AccessError (3) when refused."""
        try:
            await self._page(MaxKeys=1)
        except NotFoundError:
            raise InputError(f"SOURCE bucket does not exist: {self.prefix.bucket}") from None

    async def _page(self, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": self.prefix.bucket, "Prefix": self.prefix.key}
        if self.watermark:
            params["StartAfter"] = self.watermark
        # S3Store has no StartAfter listing of its own: the same paced, retried call.
        page: dict[str, Any] = await self.store._call("list_objects_v2", **params, **extra)
        return page

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def ready(self, consumed: Taken) -> list[Found]:
        """Objects after the watermark not consumed as they are now (key + ETag), oldest
        first by LastModified."""
        taken = _taken(consumed)
        listed: dict[str, float] = {}
        found: list[Found] = []
        token: dict[str, Any] = {}
        while True:
            page = await self._page(**token)
            for item in page.get("Contents", []):
                key = str(item["Key"])
                moment = _timestamp(item.get("LastModified"))
                listed[key] = moment
                etag = str(item.get("ETag") or "").strip('"')
                if key.endswith("/") or _skipped(key.rsplit("/", 1)[-1]):
                    self._done.add(key)  # never read: no obstacle to the watermark
                    continue
                changed = _changed(taken, key, etag)
                if changed is False:
                    continue
                if changed:
                    log.info(
                        "%s was replaced since it was read: reading it again",
                        key,
                        extra=event("file_changed", file=key, replaced=True),
                    )
                found.append(Found(key, S3Url(self.prefix.bucket, key), (moment, key), etag))
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        self._listed = listed
        return sorted(found, key=lambda f: f.order)

    def done(self, found: Found) -> str | None:
        """Mark ``found`` consumed; the new watermark when it moved (to be remembered).

        The watermark trails: it passes a key only when every key up to it is consumed
        and it was modified ``lookback`` seconds before the newest listed, so a key that
        sorts before the last one and becomes visible late (an upload that completed
        later) is still listed.
        """
        self._done.add(found.name)
        if not self._listed:
            return None
        horizon = max(self._listed.values()) - self.lookback
        moved = None
        for key in sorted(self._listed):
            if key not in self._done or self._listed[key] > horizon:
                break
            moved = key
        if moved is None or moved <= (self.watermark or ""):
            return None
        self.watermark = moved
        self._listed = {k: t for k, t in self._listed.items() if k > moved}
        self._done = {k for k in self._done if k > moved}
        return moved

    def close(self) -> None:
        return None


def _timestamp(value: object) -> float:
    """An S3 ``LastModified`` (a datetime) as POSIX seconds; 0 when absent."""
    if isinstance(value, datetime):
        return value.timestamp()
    return 0.0
