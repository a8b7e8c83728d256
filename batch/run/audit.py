"""One ``liveness-audit run``: :class:`AuditRun`, from locations to a committed report.

The CLI builds an :class:`AuditRun` from the input and output locations and the
:class:`~batch.config.Settings`, and awaits :meth:`AuditRun.run` (or
:meth:`AuditRun.dry_run`, which only reads the plan). The run holds every part it uses,
each built once: the plain ones (stop, retry policy, limiter, tally, breaker, display) at
construction, the ones that do I/O (AWS session, S3 store, Rekognition client) inside the
event loop on one :class:`~contextlib.AsyncExitStack`. Its phases are methods, in order,
each handing the next what it leaves as a typed record (no phase sets an attribute that a
later one reads): ``stage_input -> Plan``, the plan's parts built once (:class:`Frame`),
``resume -> Resumed``, ``fetch -> AccessError | None``, ``finish -> Ending``, ``publish``:

1. :meth:`~AuditRun.stage_input`: the plan (:func:`~batch.engine.staging.stage_plan`: an
   S3 input is copied to the work directory); an ``--output`` template resumes the report
   its unfinished run rendered (:class:`~batch.run.resume.OutputRecord`);
2. :meth:`~AuditRun.resume`: the report is a ledger (:mod:`batch.store.ledger`): the
   existing report (an S3 one downloaded, its ETag remembered), the journal of an
   unfinished run and the invalid cells are merged, and
   :func:`~batch.run.resume.plan_work` decides who is asked (pending, unanswered, absent;
   all with ``--fresh``) and who only gets a local step redone;
3. :meth:`~AuditRun.fetch`: those through the worker pool, each session as
   :class:`~batch.engine.steps.SessionSteps` (fetch -> evidence -> images -> record) or
   :meth:`~batch.engine.local.LocalSteps.redo`; a session answering ``CREATED`` or
   ``IN_PROGRESS`` is put back every ``settle_interval`` until it settles
   (:class:`~batch.engine.settle.Settler`);
4. :meth:`~AuditRun.finish`: ``NotAttempted`` rows for what was left; the report written
   from the ledger (every session of every earlier run too) and committed;
5. :meth:`~AuditRun.publish`: an S3 report uploaded conditionally
   (:mod:`batch.engine.publish`: ``If-Match`` the ETag read, ``If-None-Match`` for a new
   key); a lost race downloads the other writer's report, merges it and tries again (kept
   locally if that fails).

The journal is removed only when the run left nothing to ask and its report is committed
(and uploaded). The run's report lock is held from resume to publish; signals and the
time budget stop it in good order (:func:`~batch.engine.stops.orderly_stops`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from batch import __version__
from batch.aws.s3 import S3Store
from batch.config import Settings
from batch.engine.destination import Destination, default_work_dir, destination_for
from batch.engine.existing import base_copy, fetch_base
from batch.engine.local import LocalSteps
from batch.engine.parts import Parts
from batch.engine.progress import BarDisplay, LogDisplay, summary_line
from batch.engine.publish import Merge, Merged, publish
from batch.engine.record import Recorder
from batch.engine.regions import (
    Routes,
    route,
    with_regions,
)
from batch.engine.settle import Settler
from batch.engine.staging import stage_plan
from batch.engine.steps import SessionSteps
from batch.engine.stops import Stop, orderly_stops
from batch.errors import (
    AccessError,
    AuditError,
    OutputError,
    PublishError,
    ServiceError,
    StorageError,
    UsageError,
)
from batch.logs import LOGGER, event
from batch.model import QuotaUse, RunSummary
from batch.reconcile import Annotator
from batch.run.resume import MUST_MATCH, OutputRecord, Wanted, Work, plan_work, row_header
from batch.store.checkpoint import RunLock, journal_path, read_journal
from batch.store.files import parse_mode, remove_stale
from batch.store.inputs import Plan, read_plan
from batch.store.ledger import pending
from batch.store.locations import Location, S3Url, is_s3
from batch.store.manifest import Manifest
from batch.store.merge import Base, check_base, edit_history, lean_reads, read_base
from batch.store.report import invalid_row, iter_rows, report_schema
from batch.store.seal import Seals

__all__ = [
    "AuditRun",
    "Destination",
    "Ending",
    "Frame",
    "Resumed",
    "plan_counts",
    "publish_or_keep",
]

log = logging.getLogger(LOGGER)

E = TypeVar("E", bound=BaseException)
PUBLISH_TRIES = 5  # conditional uploads of one report before giving up (PublishError)


def plan_counts(plan: Plan) -> str:
    c = plan.counts()
    return (
        f"{c['rows']} rows: {c['valid']} valid, {c['duplicates']} duplicate, "
        f"{c['invalid']} invalid, {c['blank']} blank"
    )


@dataclass(frozen=True, slots=True)
class Frame:
    """What the phases after staging work with, built once the plan is known: the
    plan, where the report goes, its recorder, the local steps, each session's region
    and what completes the rows (kept columns, reconciliation), and when the run began."""

    plan: Plan
    destination: Destination
    recorder: Recorder
    local: LocalSteps
    routes: Routes | None  # --region-column: each session's region
    annotator: Annotator
    header: dict[str, Any]  # the journal's header: what the rows are made with
    started_at: datetime
    start: float  # the loop's clock at the start, for the wall time


@dataclass(frozen=True, slots=True)
class Remote:
    """What the S3 report was when read: its ETag, or None when the key was absent;
    ``known`` False when it could not be read (S3 down): it is merged before the upload."""

    etag: str | None = None
    known: bool = True


@dataclass(frozen=True, slots=True)
class Resumed:
    """What :meth:`AuditRun.resume` leaves: the S3 report as read, the work left, and the
    edits of the report merged into (earlier runs' accepted ones, and this run's)."""

    remote: Remote
    work: Work
    edits: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Ending:
    """What :meth:`AuditRun.finish` leaves: the committed report, its provenance and the
    last counts."""

    manifest: Manifest
    leftovers: Counter[str]  # NotAttempted and InvalidSessionId rows, by code
    line: str
    wall: float
    aborted: AccessError | None
    quota: QuotaUse | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def left(self) -> int:
        return self.leftovers["NotAttempted"]


def _same_path(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


class AuditRun:
    """One ``run`` command: ``await AuditRun(...).run()`` inside the event loop."""

    def __init__(
        self,
        source: Location,
        target: Location,
        settings: Settings,
        *,
        fresh: bool = False,
        budget: float | None = None,
        template: str | None = None,
        merge_journal: Path | None = None,
    ) -> None:
        self.source, self.target, self.settings = source, target, settings
        self.fresh, self.budget = fresh, budget
        self.template = template  # the --output as given, before {date}/{time} were filled
        self.merge_journal = merge_journal  # --merge-journal: an old journal's answers
        self.work_dir = settings.work_dir or default_work_dir()
        self.mode = parse_mode(settings.file_mode)  # of every file that holds answers
        self.run_id = uuid.uuid4().hex
        lean_reads()
        self._stack = AsyncExitStack()
        self.parts = Parts(settings, self._stack)
        self.stop, self.tally = self.parts.stop, self.parts.tally
        bar = settings.progress and settings.log_format == "text" and sys.stderr.isatty()
        self.display = (
            BarDisplay(self.tally)
            if bar
            else LogDisplay(self.tally, interval=settings.log_interval)
        )

    def needs_s3(self) -> bool:
        settings = self.settings
        return (
            isinstance(self.source, S3Url)
            or isinstance(self.target, S3Url)
            or settings.verify_evidence
            or is_s3(settings.save_images or "")
        )

    async def dry_run(self) -> Plan:
        """The plan of the input; nothing is sent to Rekognition, nothing written."""
        async with self._stack:
            return await self.stage_input()

    async def run(self) -> RunSummary:
        """All the phases, under orderly stops; the run's summary."""
        async with self._stack:
            plan = await self.stage_input()
            target, record = self._resumed_target(plan)
            destination = destination_for(target, self.work_dir, mode=self.mode)
            if isinstance(target, S3Url):
                await self.parts.s3().check_bucket(target.bucket)
            log.info(
                "plan: %s",
                plan_counts(plan),
                extra=event("start", input=plan.origin, output=str(destination), **plan.counts()),
            )
            async with orderly_stops(
                self.stop, drain_timeout=self.settings.drain_timeout, budget=self.budget
            ):
                return await self._audit(plan, destination, record)

    async def _audit(
        self, plan: Plan, destination: Destination, record: OutputRecord | None
    ) -> RunSummary:
        """Resume -> fetch -> finish -> publish, holding the report's lock; each phase
        hands the next what it leaves."""
        started_at, start = datetime.now(UTC), asyncio.get_running_loop().time()
        self.tally.total = len(plan.valid)
        with RunLock(destination.local, mode=self.mode):
            remove_stale(destination.local)
            frame = self._frame(plan, destination, started_at, start)
            recorder = frame.recorder
            try:
                resumed = await self.resume(frame)
                aborted = await self.fetch(frame, resumed.work) if resumed.work else None
                ending = self.finish(frame, resumed, aborted)
                ending, publish_error = await self.publish(frame, resumed, ending)
            except BaseException:
                recorder.abandon()
                raise
            finally:
                base_copy(destination.local).unlink(missing_ok=True)
            complete = (
                aborted is None
                and not self.tally.unresolved
                and not (self.tally.pending and self.settings.settle)  # as the verdict
                and not ending.left
                and publish_error is None
            )
            recorder.close(remove=complete)
            if complete and record is not None:
                record.forget()
        return self._summary(frame, ending, publish_error)

    def _frame(
        self, plan: Plan, destination: Destination, started_at: datetime, start: float
    ) -> Frame:
        """The parts of this plan: local steps, regions, annotator and the recorder (last:
        what may refuse the settings does so before a file is opened)."""
        local = self.parts.local_steps(self.work_dir, str(destination))
        schema, annotator = self._annotate(plan)
        routes = route(plan, self.settings.region_column)
        header = row_header(plan, self.settings)
        own = self.merge_journal is not None and _same_path(
            self.merge_journal, journal_path(destination.local)
        )
        recorder = Recorder.open(
            destination.local,
            header,
            self.tally,
            must_match=() if own else MUST_MATCH,  # merged on purpose: its header goes
            batch_rows=self.settings.batch_rows,
            mode=self.mode,
            schema=schema,
            decorate=with_regions(routes, annotator),
            index=plan.valid,
        )
        recorder.seals = Seals(self.work_dir / "seals", mode=self.mode)
        recorder.location = str(destination)
        return Frame(
            plan, destination, recorder, local, routes, annotator, header, started_at, start
        )

    # --- the phases -------------------------------------------------------------------

    async def stage_input(self) -> Plan:
        """The input's plan (:func:`~batch.engine.staging.stage_plan`: an S3 input is
        copied to the work directory and read there)."""
        if self.needs_s3():
            await self.parts.open_s3()
        settings = self.settings

        def read(path: Path, origin: str | None) -> Plan:
            return read_plan(
                path,
                column=settings.column,
                fmt=settings.format,
                origin=origin,
                keep=settings.input_columns,
                flags=settings.column_flags,
                dialect=settings.dialect,
            )

        folder = self.work_dir / "inputs"
        return await stage_plan(
            self.source, read, store=self.parts.store, folder=folder, mode=self.mode
        )

    async def resume(self, frame: Frame) -> Resumed:
        """The existing report (verified; only its rows of this run's sessions read), the
        journal and the invalid cells merged; the work left."""
        plan, destination, recorder = frame.plan, frame.destination, frame.recorder
        resumed_ids = {row.session_id for row in recorder.journal.replay()}
        wanted = Wanted(plan.valid, {*(invalid.value for invalid in plan.invalid), *resumed_ids})
        remote, edits = await self._read_report(destination, recorder, wanted)
        recorder.load(recorder.journal.replay())  # after the report's rows: the journal's
        if self.merge_journal is not None and not _same_path(
            recorder.journal.path, self.merge_journal
        ):
            merged = recorder.merge(read_journal(self.merge_journal))
            log.info("merged %d answers from %s", merged, self.merge_journal)
        # An unfinished run of this input is resumed: its rows are brought up to the
        # settings of this one (the journal's header says what they were made with).
        resumed = plan.valid if recorder.journal.previous is not None else ()
        recorder.load(invalid_row(invalid) for invalid in plan.invalid)
        work = plan_work(
            plan,
            recorder,
            frame.local,
            self.tally,
            fresh=self.fresh,
            resumed=resumed,
            previous=recorder.journal.previous,
            header=frame.header,
            journaled=resumed_ids,
        )
        self._say_resumed(destination, work)
        return Resumed(remote, work, tuple(edits))

    async def _read_report(
        self, destination: Destination, recorder: Recorder, wanted: Collection[str]
    ) -> tuple[Remote, list[dict[str, Any]]]:
        """The report at the destination merged from (its rows of ``wanted``): the S3
        object as read, and the edits of the report."""
        if destination.remote is None:
            return Remote(), self._check_base(recorder, read_base(destination.local), wanted)
        remote, edits = Remote(known=False), []
        try:
            base, etag = await fetch_base(destination.remote, destination.local, self.parts.s3())
            edits = self._check_base(recorder, base, wanted)
            remote = Remote(etag)
        except ServiceError as exc:  # S3 down: fetch now (answers expire), merge later
            log.warning(
                "cannot read the existing report %s (%s): fetching anyway; it is merged "
                "before the upload",
                destination,
                exc,
            )
        if destination.local.exists():  # a report whose upload failed: every row
            recorder.load(iter_rows(destination.local))  # spilled a batch at a time
        return remote, edits

    def _say_resumed(self, destination: Destination, work: Work) -> None:
        tally = self.tally
        if tally.resumed or tally.kept or work.redo:
            log.info(
                "resuming %s: %d sessions already answered (%d kept from the report), %d to "
                "finish locally, %d to ask",
                destination,
                tally.resumed + tally.kept,
                tally.kept,
                len(work.redo),
                work.asks,
            )

    def _check_base(
        self, recorder: Recorder, base: Base, wanted: Collection[str]
    ) -> list[dict[str, Any]]:
        """Verify the report merged into (an edited one is refused, or accepted and
        recorded), then take its schema and its rows of ``wanted`` into the recorder; the
        report's edits: earlier runs' and the one accepted now."""
        accepted = check_base(
            base,
            accept=self.settings.accept_edited_report,
            seals=recorder.seals,
            location=recorder.location,
        )
        recorder.use_base(base, wanted)
        return edit_history(base, accepted, self.run_id)

    async def fetch(self, frame: Frame, work: Work) -> AccessError | None:
        """Ask or redo ``work`` through the worker pool, settling pending sessions; the
        error that aborted the run, if one did.

        A failed local write (:class:`StorageError`: the disk is full) stops the run and is
        raised once the pool is done: the report cannot be written, the journal is kept.
        """
        fetcher = await self.parts.fetcher(frame.routes)
        steps = SessionSteps(fetcher, frame.recorder.record, frame.local)
        settings = self.settings
        settler = Settler(
            interval=settings.settle_interval,
            duration=settings.settle,
            stopping=lambda: bool(self.stop),
        )
        self.tally.waiting_now = lambda: settler.waiting
        handle = self._handler(steps, frame, work, settler)
        aborted: AccessError | None = None
        storage: StorageError | None = None
        try:
            async with (
                self.display.running(),
                self.parts.pool(handle) as pool,
                _woken_on_stop(self.stop, settler),
            ):
                for session_id in work.sessions():
                    if self.stop:
                        break
                    settler.sent()
                    await pool.put(session_id)
                await settler.feed(pool.put)
        except* AccessError as group:
            aborted = _first(group.exceptions, AccessError)
            self.stop.request(f"aborted: {aborted}")
        except* StorageError as group:
            storage = _first(group.exceptions, StorageError)
            self.stop.request(str(storage))
        except* asyncio.CancelledError:
            # A second signal or the drain deadline cancelled the workers: keep what is done.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self.stop.request("interrupted")
        if left := settler.abandon():
            log.info("%d sessions still pending when the run ended: a rerun asks again", len(left))
        if storage is not None:
            raise storage
        return aborted

    def _handler(
        self, steps: SessionSteps, frame: Frame, work: Work, settler: Settler
    ) -> Callable[[str], Awaitable[None]]:
        """What a worker does with a session: ask it, or redo the local steps of its kept
        answer; then the settler hears whether it is still pending."""
        redo = dict(work.redo)
        recorder, local = frame.recorder, frame.local

        async def handle(session_id: str) -> None:
            row = redo.pop(session_id, None)
            if row is None:
                kept = await steps(session_id)
            else:
                redone = await local.redo(row)
                kept = recorder.redone(redone)  # journaled: its spool copies can go
                local.drop_saved(redone)
            settler.answered(session_id, pending=pending(kept))

        return handle

    def finish(self, frame: Frame, resumed: Resumed, aborted: AccessError | None) -> Ending:
        """``NotAttempted`` rows for what was left; the report committed with its provenance."""
        plan, recorder = frame.plan, frame.recorder
        self.stop.fetched = True
        finished = recorder.finished_rows()  # only the others are looked at one by one
        leftovers = recorder.leftovers(resumed.work.sessions(finished), self.stop.reason)
        recorder.count(plan.valid)
        if plan.invalid:
            leftovers["InvalidSessionId"] = len(plan.invalid)
        wall = asyncio.get_running_loop().time() - frame.start
        quota = self.parts.quota_use(wall)
        line = summary_line(self.tally, wall=wall, extra=leftovers, quota=quota)
        line += self.parts.regional.line() if self.parts.regional is not None else ""
        provenance = self._provenance(frame, resumed.edits, line=line, quota=quota)
        try:
            manifest = recorder.commit(provenance, input_sha256=plan.sha256)
        except OutputError as exc:  # answers are in hand: never "nothing was fetched" (2)
            raise StorageError(
                f"{exc}; the run stopped, keeping what was journaled: fix it and rerun the "
                "same command to resume",
                path=str(recorder.report),
            ) from None
        return Ending(manifest, leftovers, line, wall, aborted, quota, provenance)

    async def publish(
        self, frame: Frame, resumed: Resumed, ending: Ending
    ) -> tuple[Ending, AuditError | None]:
        """Upload an S3 report (:func:`publish_or_keep`); on a lost race the other
        writer's report is merged into the ledger and the report committed again. The
        ending (its manifest may change) and the error that kept the report local."""
        destination, recorder = frame.destination, frame.recorder
        if destination.remote is None:
            return ending, None
        manifests = [ending.manifest]

        def merge(base: Base) -> Manifest:
            self._check_base(recorder, base, recorder.held())
            manifests.append(recorder.commit(ending.provenance, input_sha256=frame.plan.sha256))
            return manifests[-1]

        remote = resumed.remote
        merged = Merged(ending.manifest, remote.etag) if remote.known else None
        error = await publish_or_keep(
            self.parts.s3(), destination, merge, merged=merged, run_id=self.run_id
        )
        return replace(ending, manifest=manifests[-1]), error

    # --- the parts --------------------------------------------------------------------

    def _resumed_target(self, plan: Plan) -> tuple[Location, OutputRecord | None]:
        """The report an unfinished run of this ``--output`` template wrote, if any, and
        the record of the template's report (forgotten once the run is complete)."""
        template = self.template
        if template is None or template == str(self.target):
            return self.target, None
        record = OutputRecord(self.work_dir, template, plan, mode=self.mode)
        earlier = record.recorded()
        if earlier is not None and earlier != self.target:
            local = destination_for(earlier, self.work_dir, mode=self.mode).local
            if journal_path(local).exists():
                log.warning(
                    "resuming the unfinished run of %s: its report is %s (not %s)",
                    template,
                    earlier,
                    self.target,
                )
                return earlier, record
        record.remember(self.target)
        return self.target, record

    def _annotate(self, plan: Plan) -> tuple[pa.Schema, Annotator]:
        """The report's schema and what completes its rows: kept columns, reconciliation."""
        settings = self.settings
        kept = [f for f in plan.kept_fields if f.name in settings.kept_columns]
        schema = report_schema(
            kept,
            reconciled=settings.app_decision_column is not None,
            region_column=settings.region_column,
        )
        annotator = Annotator(
            plan.kept,
            [f.name for f in plan.kept_fields],
            report=settings.kept_columns,
            decision=settings.app_decision_column,
            confidence=settings.app_confidence_column,
            threshold=settings.threshold,
            tolerance=settings.confidence_tolerance,
        )
        return schema, annotator

    def _provenance(
        self,
        frame: Frame,
        edits: Sequence[dict[str, Any]],
        *,
        line: str,
        quota: QuotaUse | None,
    ) -> dict[str, Any]:
        plan = frame.plan
        return {
            "tool": "liveness-audit",
            "tool_version": __version__,
            "run_id": self.run_id,
            "started_at": frame.started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "input_path": plan.origin,
            "input_sha256": plan.sha256,
            "input_format": plan.format,
            "input_column": plan.column,
            "input_counts": plan.counts(),
            "settings": self.settings.public(),
            "requests": self.tally.requests,
            "throttled": self.tally.throttles,
            "quota": None if quota is None else quota.as_dict(),
            "pool": {"ceiling": self.parts.gate.ceiling, "in_flight_max": self.parts.gate.most},
            "summary": line,
            **self._regions(frame.routes),
            **({"accepted_edits": list(edits)} if edits else {}),
        }

    def _regions(self, routes: Routes | None) -> dict[str, Any]:
        """The provenance's ``regions`` (a run across regions): sessions and calls of each."""
        if routes is None:
            return {}
        calls = self.parts.regional.counts() if self.parts.regional is not None else {}
        return {"regions": {"sessions": routes.counts(), "calls": calls}}

    def _summary(
        self, frame: Frame, ending: Ending, publish_error: AuditError | None
    ) -> RunSummary:
        tally, plan = self.tally, frame.plan
        return RunSummary(
            run_id=self.run_id,
            report=str(frame.destination),
            sessions=len(plan.valid) + len(plan.invalid),
            unresolved=tally.unresolved,
            not_attempted=ending.left,
            aborted=ending.aborted,
            stop_reason=self.stop.reason,
            line=ending.line,
            by_status=dict(tally.by_status),
            by_error=dict(tally.by_error + ending.leftovers),
            requests=tally.requests,
            throttled=tally.throttles,
            wall=ending.wall,
            manifest=ending.manifest,
            publish_error=publish_error,
            quota=ending.quota,
            reconciliation=frame.annotator.counts(),
            kept_conflicts=plan.conflicts,
            pending=tally.pending,
            settle=self.settings.settle,
        )


async def publish_or_keep(
    store: S3Store,
    destination: Destination,
    merge: Merge,
    *,
    merged: Merged | None,
    run_id: str,
) -> AuditError | None:
    """Publish the committed report (:func:`batch.engine.publish.publish`); on failure
    keep it (and the checkpoint) locally: the error says where, and that a rerun of the
    same command uploads it without asking Rekognition again."""
    try:
        await publish(
            store,
            destination,
            merge,
            merged=merged,
            tries=PUBLISH_TRIES,
            metadata={"run-id": run_id},
        )
    except asyncio.CancelledError:
        # A second signal: stop at once, but say where the report is; nothing is lost.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return PublishError(
            f"stopped during the upload to {destination.remote}; the report is complete at "
            f"{destination.local} and a rerun of the same command uploads it"
        )
    except (ServiceError, AccessError, UsageError, PublishError) as exc:
        kept = f"{_kept(destination)} ({exc}); a rerun of the same command uploads it"
        where = event("upload_failed", report=str(destination.local))
        log.error("%s", kept, extra=where)  # noqa: TRY400  # one line; no traceback in cron mail
        if isinstance(exc, AccessError):
            return AccessError(kept, code=exc.code)
        return PublishError(kept)
    return None


def _kept(destination: Destination) -> str:
    return (
        f"uploading the report to {destination.remote} failed; it is complete at "
        f"{destination.local} (nothing fetched is lost)"
    )


@asynccontextmanager
async def _woken_on_stop(stop: Stop, settler: Settler) -> AsyncIterator[None]:
    """Wake the settler's feed when the run is asked to stop (it then returns)."""

    async def watch() -> None:
        await stop.requested.wait()
        settler.wake()

    task = asyncio.create_task(watch())
    try:
        yield
    finally:
        task.cancel()


def _first(errors: tuple[BaseException, ...], kind: type[E]) -> E:
    for error in errors:
        if isinstance(error, kind):
            return error
        if isinstance(error, BaseExceptionGroup):
            return _first(error.exceptions, kind)
    raise AssertionError(f"no {kind.__name__} in the group")
