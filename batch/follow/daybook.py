"""Per-day reports of the capture service: ledgers, journals, publishing.

``--output`` may hold ``{date}``: an answer goes to the report of the day its session was
first answered in (``--timezone``), so a session settling after midnight stays with the
report that has its first answer. Each report being filled is a :class:`Day`:

- ``rows``: the answers since its last publish and the sessions not settled yet, merged
  with :func:`~batch.store.ledger.keep`;
- ``journal``: every answer appended as it arrives (flushed at once, fsync'd within a
  second), in the service's state folder; after a publish it is rewritten with only the
  rows still held, so it stays small.

:meth:`Daybook.publish` merges a day's rows into the report as it is now (local file,
or the S3 object and its ETag; streamed through, :mod:`batch.store.merge`), writes it
atomically and publishes it (:mod:`batch.engine.publish`: a conditional upload, merged
again when another writer got there first). Settled rows then leave
memory: a service running for days holds only what is not published or not settled.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from batch.aws.s3 import S3Store
from batch.engine.destination import Destination
from batch.engine.publish import publish
from batch.logs import LOGGER, event
from batch.store.checkpoint import Journal, RunLock
from batch.store.files import PRIVATE, private_dir, remove_stale
from batch.store.ledger import Ledger, keep, latest, rank, settled
from batch.store.locations import Location, S3Url, parse_location
from batch.store.manifest import Manifest
from batch.store.merge import (
    Base,
    check_base,
    edit_history,
    lean_reads,
    merged_schema,
    read_base,
    rows_for,
    stream_merge,
)
from batch.store.report import SCHEMA, ReportWriter, check_output
from batch.store.row import Row
from batch.store.seal import Seals

__all__ = ["Day", "Daybook", "publish_rows"]

log = logging.getLogger(LOGGER)

Render = Callable[[datetime], str]  # a moment -> the report's location (the template filled)

_RACES = 10  # conditional writes lost in a row before the publish is given up for now


@dataclass
class Day:
    """One report being filled (see the module docstring)."""

    key: str  # the report's location as text
    target: Location
    local: Path  # the report itself (local), or its copy before the upload (S3)
    journal: Journal
    journal_path: Path
    rows: dict[str, Row] = field(default_factory=dict)
    changed: bool = False  # rows arrived since the last publish
    arrived: int = 0  # answers since the last publish (a burst publishes early: issue 24)

    def unsettled(self) -> list[Row]:
        return [row for row in self.rows.values() if not settled(row)]


def _identity(key: str) -> dict[str, str]:
    return {"report": key}


def _journal_key(path: Path) -> str | None:
    """The report a journal in the state folder belongs to (its header says)."""
    try:
        with path.open(encoding="utf-8") as f:
            header = json.loads(f.readline())
    except (OSError, ValueError):
        return None
    report = header.get("report") if isinstance(header, dict) else None
    return str(report) if report else None


class Daybook:
    """The days being filled, by report location; ``home`` maps a session to its day."""

    def __init__(
        self,
        render: Render,
        *,
        timezone: str,
        state: Path,
        work_dir: Path,
        store: S3Store | None,
        provenance: Mapping[str, Any],
        mode: int = PRIVATE,
        accept_edited: bool = False,
    ) -> None:
        self._render = render
        self._zone = ZoneInfo(timezone)
        self._journals = private_dir(state / "journals", mode=mode)
        self._seals = Seals(state / "seals", mode=mode)
        lean_reads()
        self._staging = work_dir
        self._store = store
        self._provenance = dict(provenance)
        self._mode = mode
        self._accept_edited = accept_edited
        self.days: dict[str, Day] = {}
        self.home: dict[str, str] = {}  # session -> key of its day, while not settled
        # sessions settled and published, by day, while the day is open: never asked again
        self.settled_ids: dict[str, set[str]] = {}

    # --- which day ------------------------------------------------------------------

    def key_at(self, moment: datetime) -> str:
        """The report of ``moment``'s day: the template filled at that day's midnight."""
        local = moment.astimezone(self._zone)
        midnight = datetime.combine(local.date(), time(0), tzinfo=self._zone)
        return self._render(midnight)

    def day(self, key: str) -> Day:
        """The day of report ``key``, opened (journal replayed) on first use."""
        if key in self.days:
            return self.days[key]
        target = parse_location(key, "--output")
        if isinstance(target, S3Url):
            parts = [p for p in target.key.split("/") if p not in ("", ".", "..")]
            local = self._staging / "reports" / target.bucket / Path(*parts)
        else:
            local = target
        # The report's folder is made when it is published: an answer is journaled even
        # when that folder cannot be made (a full disk, a file in the way).
        name = hashlib.sha256(key.encode()).hexdigest()[:20] + ".journal"
        path = self._journals / name
        journal = Journal.open(path, _identity(key), mode=self._mode)
        day = Day(key, target, local, journal, path)
        for row in journal.replay():
            sid = row.session_id
            day.rows[sid] = keep(day.rows.get(sid), row)
            day.changed = True
        self.days[key] = day
        return day

    def reopen(self) -> list[Day]:
        """The days whose journals an earlier (stopped or killed) service left behind."""
        for path in sorted(self._journals.glob("*.journal")):
            key = _journal_key(path)
            if key is not None:
                self.day(key)
        return list(self.days.values())

    # --- answers --------------------------------------------------------------------

    def add(self, row: Row, now: datetime | None = None) -> tuple[Row | None, Row]:
        """Journal ``row`` and merge it into its session's day: (the kept row before, after)."""
        sid = row.session_id
        key = self.home.get(sid)
        if key is None:
            key = self.key_at(now or datetime.now(UTC))
        day = self.day(key)
        day.journal.append(row)
        before = day.rows.get(sid)
        kept = keep(before, row)
        day.rows[sid] = kept
        day.changed = True
        day.arrived += 1
        if settled(kept):
            self.home.pop(sid, None)
        else:
            self.home[sid] = key
        return before, kept

    def crowded(self, limit: int) -> bool:
        """Some day has ``limit`` answers or more since its last publish."""
        return any(day.arrived >= limit for day in self.days.values())

    def remember_settled(self, key: str, session_ids: Iterable[str]) -> None:
        """Sessions of day ``key`` settled already (its report, read at a restart)."""
        self.settled_ids.setdefault(key, set()).update(session_ids)

    def known(self, session_id: str) -> bool:
        """Held in memory, or settled in a day still open: not to be asked again."""
        return self.held(session_id) is not None or any(
            session_id in ids for ids in self.settled_ids.values()
        )

    def sync(self) -> None:
        """Every day's journal on disk now (fsync'd), before a file is recorded consumed."""
        for day in self.days.values():
            day.journal.sync_now()

    def held(self, session_id: str) -> Row | None:
        """The row held in memory for a session (any day), if any."""
        key = self.home.get(session_id)
        if key is not None:
            return self.days[key].rows.get(session_id)
        for day in self.days.values():
            if session_id in day.rows:
                return day.rows[session_id]
        return None

    # --- publishing -----------------------------------------------------------------

    async def publish(self, day: Day) -> int:
        """Merge ``day`` into its report and publish it; the report's row count.

        Settled rows leave memory afterwards and the journal keeps only what is left.
        OutputError when a local report is locked by a ``run`` (tried again next time).
        """
        snapshot = dict(day.rows)
        # tried (published or not): the next try is at publish_every or after publish_rows
        # more answers, never at every answer while it fails (answers that came while it
        # was publishing count on)
        day.arrived = 0
        private_dir(day.local.parent, mode=self._mode)
        check_output(day.local)
        provenance = {**self._provenance, "published_at": datetime.now(UTC).isoformat()}
        rows = await publish_rows(
            snapshot.values(),
            day.target,
            day.local,
            self._store,
            provenance,
            mode=self._mode,
            seals=self._seals,
            accept_edited=self._accept_edited,
        )
        gone = self.settled_ids.setdefault(day.key, set())
        for sid, row in snapshot.items():
            if day.rows.get(sid) is row and settled(row):
                del day.rows[sid]
                gone.add(sid)
        # changed since the snapshot (a row published and then dropped is not a change)
        day.changed = any(snapshot.get(sid) is not row for sid, row in day.rows.items())
        self._rotate(day)
        return rows

    def _rotate(self, day: Day) -> None:
        """Rewrite the journal with only the rows still held (atomically renamed in)."""
        tmp = day.journal_path.with_name(day.journal_path.name + ".new")
        tmp.unlink(missing_ok=True)
        fresh = Journal.open(tmp, _identity(day.key), mode=self._mode)
        for row in day.rows.values():
            fresh.append(row)
        fresh.close()
        day.journal.close()
        tmp.replace(day.journal_path)
        day.journal = Journal.open(day.journal_path, _identity(day.key), mode=self._mode)

    def settling(self, day: Day) -> bool:
        """Some session of ``day`` is still being settled (asked again in its window)."""
        return any(self.home.get(sid) == day.key for sid in day.rows)

    def closable(self, day: Day, current: str) -> bool:
        """A past day, published, none of its sessions still being settled: the rows it
        holds (settled, or pending past their settle window: the report has them as last
        seen) leave memory with it (issue 24: a week of ``follow`` in flat memory)."""
        if day.key == current:
            return False
        return not day.rows or (not day.changed and not self.settling(day))

    def close_day(self, day: Day) -> None:
        """A published day with nothing left to settle: forget it, journal and all."""
        day.journal.close(remove=True)
        del self.days[day.key]
        self.settled_ids.pop(day.key, None)

    def close(self) -> None:
        for day in self.days.values():
            day.journal.close()


def _merged(base: Iterable[Row], rows: Iterable[Row]) -> Ledger:
    """The report's rows of our sessions with ours merged in.

    A row we hold already carries every answer we merged into it, the published one
    included: it replaces the report's row unless the report knows something newer
    (another writer's answer), in which case the two are merged by rank.
    """
    ledger = Ledger(base)
    for row in rows:
        old = ledger.get(row.session_id)
        if old is not None and rank(row) >= rank(old) and _moment(old) <= _moment(row):
            ledger.replace(row)
        else:
            ledger.add(row)
    return ledger


def _moment(row: Row) -> datetime:
    return latest(row.checked_at, row.fetched_at) or datetime.min.replace(tzinfo=UTC)


async def publish_rows(
    rows: Iterable[Row],
    target: Location,
    local: Path,
    store: S3Store | None,
    provenance: Mapping[str, Any],
    *,
    mode: int = PRIVATE,
    seals: Seals | None = None,
    accept_edited: bool = False,
) -> int:
    """Merge ``rows`` into the report at ``target`` and publish it; its row count.

    Local: under the report's run lock, written atomically. S3: written at ``local`` and
    published (:func:`batch.engine.publish.publish`: a conditional upload, merged again
    when another writer won the race). Either way the report is verified first (an
    edited one is refused: :class:`~batch.store.merge.EditedReportError`, unless
    ``accept_edited``; the provenance keeps every accepted edit) and streamed
    through (:mod:`batch.store.merge`): its other sessions and the columns ``follow``
    does not make (kept input columns, reconciliation, region) stay.
    """
    ours = list(rows)
    how = _How(mode, seals, accept_edited)
    if isinstance(target, Path):
        with RunLock(target, mode=mode):
            remove_stale(target)
            return _write(read_base(target), ours, local, provenance, how).rows
    assert store is not None

    def merge(base: Base) -> Manifest:
        return _write(base, ours, local, provenance, how, str(target))

    destination = Destination(local, target)
    metadata = {"writer": "liveness-audit follow"}
    manifest = await publish(store, destination, merge, tries=_RACES, metadata=metadata)
    return manifest.rows


@dataclass(frozen=True, slots=True)
class _How:
    """How a day's report is written: its file mode, the seals, and whether an edited
    report is merged into anyway (``--accept-edited-report``)."""

    mode: int
    seals: Seals | None
    accept_edited: bool


def _write(  # the merge's parts, named
    base: Base,
    ours: list[Row],
    local: Path,
    provenance: Mapping[str, Any],
    how: _How,
    location: str | None = None,
) -> Manifest:
    """Merge ``ours`` into ``base``, written at ``local``; its manifest (``location``: the
    report's, when not ``local`` itself)."""
    mode, seals = how.mode, how.seals
    location = location or str(local)
    accepted = check_base(base, accept=how.accept_edited, seals=seals, location=location)
    edits = edit_history(base, accepted, str(provenance.get("run_id", "")))
    if edits:
        provenance = {**provenance, "accepted_edits": edits}
    ids = {row.session_id for row in ours}
    ledger = _merged(rows_for(base, ids), ours)
    writer = ReportWriter(local, mode=mode, schema=merged_schema(base.schema, SCHEMA))
    try:
        stream_merge(writer, base, ledger)
    except BaseException:
        writer.abandon()
        raise
    manifest = writer.commit(provenance, input_sha256="")
    if seals is not None:
        seals.record(location, local)
    log.debug(
        "wrote %s (%d rows)", local, manifest.rows, extra=event("written", rows=manifest.rows)
    )
    return manifest
