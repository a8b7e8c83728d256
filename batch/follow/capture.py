"""The capture service: ``async with Capture.open(...) as c: await c.run()`` until a
signal or the time budget.

Tasks inside one worker pool (the run's: limiter, retry policy, breaker, abort rules):

- ``scan``: the source's complete new files, oldest first; each is read and validated as
  ``run`` reads its INPUT (a bad file is reported once, recorded as rejected, and the
  service goes on); its new IDs join the backlog;
- ``feed``: the backlog into the pool, oldest first (those expire first);
- ``settle``: pending sessions back into the pool at the settle interval
  (:class:`~batch.engine.settle.Settler`);
- ``publish``: every ``publish_every``, at a day's rollover, and as soon as a day has
  ``publish_rows`` answers since its last publish (a burst: the rows held in memory stay
  bounded), each changed day's report is merged and published
  (:mod:`batch.follow.daybook`), metrics refreshed;
- ``show``: the progress line (or JSON event) every ``log_interval``.

Each answer is journaled as it arrives. A file is consumed once each of its new IDs has
a first answer, and the day journals are fsync'd before it is recorded so (a power loss
never leaves a file consumed whose answers were lost); a file whose identity changed
since is read again, and only sessions neither held nor settled in a day still open are
asked. A day's report that cannot be written is a publish failure (exit 1), its answers
kept in the journal. At a stop, in-flight calls finish (up to ``drain_timeout``), every
changed day is published, and the journals keep what could not be; an
:class:`~batch.errors.AccessError` stops the service at once (exit 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from batch import __version__
from batch.config import Settings
from batch.engine.destination import default_work_dir
from batch.engine.existing import settled_ids
from batch.engine.parts import Parts
from batch.engine.pool import Pool, worker_pool
from batch.engine.settle import Settler
from batch.engine.staging import stage_plan
from batch.engine.steps import SessionSteps
from batch.engine.stops import Stop, orderly_stops
from batch.errors import (
    AccessError,
    AuditError,
    InputError,
    OutputError,
    PublishError,
    ServiceError,
)
from batch.follow.consumed import Consumed
from batch.follow.daybook import Daybook, Render
from batch.follow.figures import Figures, standing_of, write_follow_metrics
from batch.follow.queue import SQS_RETENTION, SqsQueue, SqsSource, open_queue
from batch.follow.source import FolderSource, Found, S3Source, Source
from batch.logs import LOGGER, event
from batch.model import Outcome
from batch.pacing.clock import LOOP, Clock, wait_for_event
from batch.store.checkpoint import RunLock
from batch.store.files import parse_mode, private_dir
from batch.store.inputs import Plan, read_plan
from batch.store.ledger import Rank, rank, settled
from batch.store.locations import Location, S3Url, is_s3, parse_location
from batch.store.report import invalid_row
from batch.store.row import Row

__all__ = ["Capture", "FollowSummary", "Holding", "state_folder"]

log = logging.getLogger(LOGGER)

Now = Callable[[], datetime]
E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True, slots=True)
class FollowSummary:
    """How the service ended: its figures, and what decides the exit code."""

    figures: Figures
    stop_reason: str | None
    aborted: AccessError | None
    publish_error: AuditError | None


@dataclass(frozen=True, slots=True)
class Holding:
    """What the service holds in memory, entry by entry (issue 24: a week in flat memory).

    Every count but ``days_open`` is per session: all are 0 once the days before today
    are closed and nothing new has come (a closed day leaves no session behind)."""

    days_open: int
    rows: int  # rows held in open days (not published, or not settled)
    settling: int  # sessions being settled, by their day (``Daybook.home``)
    standing: int  # asked sessions whose answer has not settled (the figures follow them)
    waiting: int  # new IDs without a first answer yet
    backlog: int  # new IDs not put into the pool yet
    turns: int  # pending sessions waiting for their next settle turn
    settled: int  # sessions settled and published in days still open (not asked again)

    @property
    def sessions(self) -> int:
        """Entries held for sessions, all told."""
        return (
            self.rows
            + self.settling
            + self.standing
            + self.waiting
            + self.backlog
            + self.turns
            + self.settled
        )


def state_folder(work_dir: Path, source: str, template: str) -> Path:
    """The service's own folder in the work directory, one per SOURCE and REPORT."""
    digest = hashlib.sha256(f"{source}\n{template}".encode()).hexdigest()[:16]
    return work_dir / "follow" / digest


def _calendar() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Opened:
    """What a service works with once open: its source (checked), the consumed files and
    the day journals (the state folder locked)."""

    source: Source
    consumed: Consumed
    daybook: Daybook


class Capture:
    """One ``follow`` service (see the module docstring), built open by :meth:`open`."""

    def __init__(  # the service's parts, named; built by Capture.open
        self,
        source: Location | SqsQueue,
        render: Render,
        settings: Settings,
        *,
        parts: Parts,
        opened: Opened,
        state: Path,
        budget: float | None = None,
        now: Now = _calendar,
        clock: Clock = LOOP,
    ) -> None:
        self.source_location, self.settings, self.budget = source, settings, budget
        self._render = render
        self._now: Now = now  # the calendar: days
        self._clock = clock  # intervals: lag, publishing, progress lines, settling
        self.mode = parse_mode(settings.file_mode)
        self.state = state
        self.parts = parts
        self.source, self.consumed, self.daybook = opened.source, opened.consumed, opened.daybook
        self.stop, self.tally = self.parts.stop, self.parts.tally
        self.settler = Settler(
            interval=settings.settle_interval,
            duration=settings.settle,
            stopping=lambda: bool(self.stop),
            clock=clock,
        )
        self.figures = Figures()
        self._backlog: deque[str] = deque()
        self._standing: dict[str, str] = {}  # unsettled asked session -> figures' standing
        self._waiting: dict[str, tuple[Found, float]] = {}  # new ID -> its file, found at
        self._left: dict[str, int] = {}  # file being asked -> IDs without a first answer
        self._new_ids = asyncio.Event()
        self._settle_wake = asyncio.Event()
        self._crowded = asyncio.Event()  # a day has ``publish_rows`` answers unpublished

    @classmethod
    @contextlib.asynccontextmanager
    async def open(  # the command's arguments, named
        cls,
        source: Location | SqsQueue,
        template: str,
        render: Render,
        settings: Settings,
        *,
        budget: float | None = None,
        now: Now = _calendar,
        clock: Clock = LOOP,
    ) -> AsyncIterator[Capture]:
        """The service, open inside the running loop: S3 (if needed), the source checked
        (exit 2 if unreadable), the state folder locked, consumed files, day journals;
        all closed when the block ends."""
        state = state_folder(settings.work_dir or default_work_dir(), str(source), template)
        async with AsyncExitStack() as stack:
            parts = Parts(settings, stack)
            if _needs_s3(source, settings, render(now())):
                await parts.open_s3()
            opened = await _open(stack, parts, source, (state, render), settings)
            yield cls(
                source,
                render,
                settings,
                parts=parts,
                opened=opened,
                state=state,
                budget=budget,
                now=now,
                clock=clock,
            )

    # --- the service ----------------------------------------------------------------

    async def run(self) -> FollowSummary:
        """Serve until stopped; publish what is held; the summary."""
        async with orderly_stops(
            self.stop, drain_timeout=self.settings.drain_timeout, budget=self.budget
        ):
            await self._resume()
            log.info(
                "following %s into %s",
                self.source_location,
                self.daybook.key_at(self._now()),
                extra=event("start", source=str(self.source_location), state=str(self.state)),
            )
            aborted = await self._serve()
            self.stop.fetched = True
            publish_error = await self.publish_all(final=True)
            await self._flush_source()
        return FollowSummary(self.figures, self.stop.reason, aborted, publish_error)

    async def _flush_source(self) -> None:
        """Messages whose files are consumed are deleted now (SQS); at worst redelivered."""
        if isinstance(self.source, SqsSource):
            try:
                await self.source.flush()
            except (ServiceError, AccessError) as exc:
                log.warning("could not delete consumed messages (%s): they come back, deduped", exc)

    async def _resume(self) -> None:
        """Days an earlier service left in its journals: their unsettled sessions are
        asked again (within the settle duration), their settled ones are not."""
        young = self._now() - timedelta(seconds=self.settings.settle)
        for day in self.daybook.reopen():
            for sid, row in day.rows.items():
                if settled(row):
                    continue  # held in its day: never asked again
                if (row.fetched_at or young) >= young and self.settings.settle > 0:
                    self.daybook.home[sid] = day.key
                    self._backlog.append(sid)
                    self._asked(sid)
        today = self.daybook.key_at(self._now())
        target = parse_location(today, "--output")
        local = self.state / "resume.parquet"
        self.daybook.remember_settled(today, await settled_ids(target, local, self.parts.store))
        if self._backlog:
            log.info("resuming: %d sessions still to settle", len(self._backlog))
            self._new_ids.set()

    async def _serve(self) -> AccessError | None:
        """The tasks in the worker pool until a stop; the error that aborted, if one did."""
        steps = await self._steps()
        try:
            async with worker_pool(
                steps, concurrency=self.settings.concurrency, stop=self.stop
            ) as pool:
                await _until_stopped(
                    self.stop,
                    [
                        self._scan(),
                        self._feed(pool),
                        self._settle(pool),
                        self._publish_loop(),
                        self._show(),
                    ],
                )
        except BaseExceptionGroup as group:
            aborted = _leaf(group, AccessError)
            if aborted is not None:
                self.stop.request(f"aborted: {aborted}")
                return aborted
            error = _leaf(group, AuditError)
            if error is not None:
                raise error from None  # one line and its exit code, never a traceback
            if group.subgroup(lambda e: not isinstance(e, asyncio.CancelledError)) is not None:
                raise
            self._interrupted()
        except asyncio.CancelledError:
            self._interrupted()
        return None

    def _interrupted(self) -> None:
        """A second signal or the drain deadline cancelled the workers: keep what is done."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        self.stop.request("interrupted")

    # --- files -> backlog -----------------------------------------------------------

    async def _scan(self) -> None:
        while True:
            # consumed files as they were read; files being asked: whatever they hold now
            taken = self.consumed.identities() | dict.fromkeys(self._left)
            try:
                ready = await self.source.ready(taken)
            except ServiceError as exc:  # S3 unreachable for now: the next poll tries again
                log.warning("cannot list %s for now (%s)", self.source_location, exc)
                ready = []
            for found in ready:
                if self.stop:
                    return
                await self._take(found)
            if isinstance(self.source, FolderSource):
                self.consumed.keep_only(self.source.present)
            elif isinstance(self.source, SqsSource):
                self.consumed.forget_before(SQS_RETENTION)
            await self.source.wait(self.settings.poll_interval)

    async def _take(self, found: Found) -> None:
        """Read one complete file: its new IDs join the backlog; bad input is set aside."""
        self.figures.files_seen += 1
        try:
            plan = await self._read(found)
        except InputError as exc:
            log.warning(  # one line per bad file, no traceback
                "rejected %s: %s (recorded, not read again)",
                found.name,
                exc,
                extra=event("rejected", file=found.name, reason=str(exc)),
            )
            self.figures.files_rejected += 1
            self._consume(found, "rejected")
            return
        except ServiceError as exc:  # S3 unreachable for now: the next poll tries again
            self.figures.files_seen -= 1
            log.warning("cannot read %s for now (%s); trying again", found.name, exc)
            return
        for invalid in plan.invalid:
            self.daybook.add(invalid_row(invalid), self._now())
        new = [sid for sid in plan.valid if self._wanted(sid)]
        log.info(
            "%s: %d new sessions of %d",
            found.name,
            len(new),
            len(plan.valid),
            extra=event("file", file=found.name, new=len(new), valid=len(plan.valid)),
        )
        if not new:
            self._consume(found)
            return
        seen_at = self._clock.now()
        self._left[found.name] = len(new)
        for sid in new:
            self._waiting[sid] = (found, seen_at)
            self._backlog.append(sid)
            self._asked(sid)
        self._new_ids.set()

    async def _read(self, found: Found) -> Plan:
        s = self.settings

        def read(path: Path, origin: str | None) -> Plan:
            return read_plan(path, column=s.column, fmt=s.format, origin=origin, dialect=s.dialect)

        folder = self.state / "inputs"
        return await stage_plan(
            found.location, read, store=self.parts.store, folder=folder, mode=self.mode
        )

    def _wanted(self, session_id: str) -> bool:
        """Not queued already, not held (being settled or answered), not settled in a day
        still open (published ones included)."""
        return session_id not in self._waiting and not self.daybook.known(session_id)

    def _consume(self, found: Found, state: str = "done") -> None:
        """Record ``found`` consumed, after its answers are on disk: the day journals are
        fsync'd first, so a power loss never leaves a file consumed and its answers lost."""
        self.daybook.sync()
        self.consumed.add(found.name, state, found.identity)
        watermark = self.source.done(found)
        if watermark is not None:
            self.consumed.advance(watermark)

    # --- backlog -> pool -> answers -------------------------------------------------

    async def _feed(self, pool: Pool) -> None:
        while True:
            while not self._backlog:
                self._new_ids.clear()
                await self._new_ids.wait()
            session_id = self._backlog.popleft()
            self.settler.sent()
            self._settle_wake.set()
            await pool.put(session_id)

    async def _settle(self, pool: Pool) -> None:
        while True:
            await self.settler.feed(pool.put)
            self._settle_wake.clear()
            await self._settle_wake.wait()

    def _record(self, outcome: Outcome, paths: Mapping[str, str] | None = None) -> Row:
        """An answer: journaled in its day, counted, settled or not, its file's tally; the
        row now kept for the session."""
        row = Row.of(outcome, paths)
        _, kept = self.daybook.add(row, self._now())
        if self.daybook.crowded(self.settings.publish_rows):
            self._crowded.set()
        sid = outcome.session_id
        first = self._waiting.pop(sid, None)
        if first is not None:
            found, seen_at = first
            self.figures.lag(self._clock.now() - seen_at)
            if rank(row) in (Rank.EXPIRED, Rank.GONE):
                self.figures.expired_before_capture += 1
            self._left[found.name] -= 1
            if not self._left[found.name]:
                del self._left[found.name]
                self._consume(found)
        standing = self._standing.pop(sid, None)
        if standing is not None:  # asked by this service: the figures follow it
            self.figures.moved(standing, standing_of(kept))
        if not self.settler.answered(sid, pending=not settled(kept)):
            self.daybook.home.pop(sid, None)  # settled, or settling gave up: its answer stands
            self.figures.settle_stopped += standing is not None and not settled(kept)
        elif standing is not None:
            self._standing[sid] = standing_of(kept)
        return kept

    def _asked(self, session_id: str) -> None:
        """A session joins the figures (asked, unanswered) until its answer settles."""
        self.figures.sessions_asked += 1
        self.figures.moved(None, "unanswered")
        self._standing[session_id] = "unanswered"

    # --- publishing and display -----------------------------------------------------

    async def _publish_loop(self) -> None:
        every = self.settings.publish_every
        last, key = self._clock.now(), self.daybook.key_at(self._now())
        while True:
            crowded = await wait_for_event(self._clock, self._crowded, min(1.0, every))
            self._crowded.clear()
            now_key = self.daybook.key_at(self._now())
            if now_key == key and self._clock.now() - last < every and not crowded:
                continue
            if now_key != key:
                log.info("a new day: %s (publishing %s)", now_key, key, extra=event("rollover"))
            key, last = now_key, self._clock.now()
            await self.publish_all()

    async def publish_all(self, *, final: bool = False) -> AuditError | None:
        """Publish every changed day; close past days with nothing left. The last error."""
        error: AuditError | None = None
        current = self.daybook.key_at(self._now())
        for day in list(self.daybook.days.values()):
            if day.changed:
                try:
                    rows = await self.daybook.publish(day)
                except AccessError as exc:
                    if not final:
                        raise
                    error = exc
                    continue
                except (OutputError, ServiceError, AuditError) as exc:
                    # answers in hand: a publish failure (exit 1), never a usage error (2)
                    error = PublishError(
                        f"publishing {day.key} failed ({exc}); its answers are kept in the "
                        "service's journal and published at the next try (or restart)"
                    )
                    log.warning("%s", error)
                    continue
                self.figures.publishes += 1
                log.info(
                    "published %s (%d rows)",
                    day.key,
                    rows,
                    extra=event("published", report=day.key, rows=rows),
                )
            if self.daybook.closable(day, current):
                self.daybook.close_day(day)
        for key in [k for k in self.daybook.settled_ids if k != current]:
            if key not in self.daybook.days:  # a past day, closed: its sessions are done
                del self.daybook.settled_ids[key]
        self._refresh()
        if self.settings.metrics_file is not None:
            try:
                write_follow_metrics(
                    self.settings.metrics_file,
                    self.figures,
                    up=not final,
                    mode=parse_mode(self.settings.metrics_file_mode),
                )
            except OutputError as exc:
                log.warning("%s", exc)
        return error

    def holding(self) -> Holding:
        """What is held in memory now, entry by entry (see :class:`Holding`)."""
        book = self.daybook
        return Holding(
            days_open=len(book.days),
            rows=sum(len(day.rows) for day in book.days.values()),
            settling=len(book.home),
            standing=len(self._standing),
            waiting=len(self._waiting),
            backlog=len(self._backlog),
            turns=self.settler.waiting,
            settled=sum(len(ids) for ids in book.settled_ids.values()),
        )

    def _refresh(self) -> None:
        f = self.figures
        f.requests, f.throttled = self.tally.requests, self.tally.throttles
        f.backlog = len(self._backlog)

    async def _show(self) -> None:
        while True:
            await self._clock.sleep(self.settings.log_interval)
            self._refresh()
            log.info(self.figures.line(), extra=event("progress", **self.figures.as_dict()))

    # --- the parts ------------------------------------------------------------------

    async def _steps(self) -> SessionSteps:
        """The per-session chain (fetch -> evidence -> images -> record), as ``run`` has it."""
        local = self.parts.local_steps(self.state, str(self.source_location))
        return SessionSteps(await self.parts.fetcher(), self._record, local)


def _needs_s3(source: Location | SqsQueue, settings: Settings, today: str) -> bool:
    return (
        isinstance(source, S3Url | SqsQueue)
        or is_s3(today)
        or settings.verify_evidence
        or is_s3(settings.save_images or "")
    )


async def _open(  # the opening's parts, named
    stack: AsyncExitStack,
    parts: Parts,
    location: Location | SqsQueue,
    where: tuple[Path, Render],
    settings: Settings,
) -> Opened:
    """The source (checked: exit 2 if unreadable), the state folder locked, consumed
    files, the day journals (``where``: the state folder, the report of a moment); each
    closed by ``stack``."""
    state, render = where
    mode = parse_mode(settings.file_mode)
    source: Source
    if isinstance(location, SqsQueue):
        assert parts.session is not None
        source = await stack.enter_async_context(open_queue(parts.session, settings, location))
    elif isinstance(location, S3Url):
        assert parts.store is not None
        source = S3Source(parts.store, location, start_after=None)
    else:
        source = FolderSource(location, settle_gap=min(0.5, settings.poll_interval))
    stack.callback(source.close)
    await source.check()
    private_dir(state, mode=mode)
    stack.enter_context(RunLock(state / "service", mode=mode))
    consumed = Consumed(state / "consumed.jsonl", mode=mode)
    stack.callback(consumed.close)
    if isinstance(source, S3Source):
        source.watermark = consumed.after  # restart point
    daybook = Daybook(
        render,
        timezone=settings.timezone,
        state=state,
        work_dir=state,
        store=parts.store,
        provenance=_provenance(location, settings),
        mode=mode,
        accept_edited=settings.accept_edited_report,
    )
    stack.callback(daybook.close)
    return Opened(source, consumed, daybook)


def _provenance(location: Location | SqsQueue, settings: Settings) -> dict[str, object]:
    return {
        "tool": "liveness-audit",
        "tool_version": __version__,
        "mode": "follow",
        "run_id": uuid.uuid4().hex,
        "input_path": str(location),
        "settings": settings.public(),
    }


async def _until_stopped(stop: Stop, jobs: list[Coroutine[Any, Any, None]]) -> None:
    """Run ``jobs`` as tasks until ``stop`` is requested or one of them fails (raised)."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        while not stop:
            done, _ = await asyncio.wait(tasks, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a job only ends by failing: raise its error
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _leaf(group: BaseExceptionGroup[BaseException], kind: type[E]) -> E | None:
    """The first exception of ``kind`` in ``group`` (nested groups included), if any."""
    for error in group.exceptions:
        if isinstance(error, kind):
            return error
        if isinstance(error, BaseExceptionGroup):
            found = _leaf(error, kind)
            if found is not None:
                return found
    return None
