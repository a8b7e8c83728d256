"""One ``liveness-audit run``: :class:`AuditRun`, from locations to a committed report.

The CLI builds an :class:`AuditRun` from the input and output locations and the
:class:`~batch.config.Settings`, and awaits :meth:`AuditRun.run` (or
:meth:`AuditRun.dry_run`, which only reads the plan). The run holds every part it uses,
each built once: the plain ones (stop, retry policy, limiter, tally, breaker, display) at
construction, the ones that do I/O (AWS session, S3 store, Rekognition client) inside the
event loop on one :class:`~contextlib.AsyncExitStack`. Its phases are methods, in order:

1. :meth:`~AuditRun.stage_input`: the plan (an S3 input is copied to the work directory);
2. :meth:`~AuditRun.resume`: rows of invalid cells and of an earlier run's checkpoint;
3. :meth:`~AuditRun.fetch`: the rest through the worker pool, each session as
   :class:`~batch.run.steps.SessionSteps` (fetch -> evidence -> images -> record);
4. :meth:`~AuditRun.finish`: ``NotAttempted`` rows for what was left, the report committed;
5. :meth:`~AuditRun.publish`: an S3 report uploaded (kept locally if that fails).

The report always holds every unique session exactly once, and the run's report lock is
held from resume to publish; signals and the time budget stop it in good order
(:func:`~batch.run.stops.orderly_stops`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections import Counter
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aioboto3
import pyarrow as pa

from batch import __version__
from batch.aws.paced import PacedCall
from batch.aws.rekognition import open_client
from batch.aws.s3 import S3Store, local_copy, open_store
from batch.aws.session import open_session, retry_policy
from batch.config import Settings
from batch.errors import (
    AccessError,
    AuditError,
    ConfigError,
    InputError,
    PublishError,
    ServiceError,
    StorageError,
)
from batch.logs import LOGGER, event
from batch.model import QuotaUse, RunSummary
from batch.pacing.gate import Gate
from batch.reconcile import Annotator
from batch.run.destination import Destination, default_work_dir, destination_for
from batch.run.fetch import Fetcher, limiter_for, log_rate_cut, quota_for
from batch.run.images import FolderSaver, ImageSaver, S3Saver
from batch.run.pool import Pool, worker_pool
from batch.run.progress import BarDisplay, LogDisplay, Tally, summary_line
from batch.run.record import Recorder
from batch.run.regions import (
    RegionalFetcher,
    RegionalPool,
    Routes,
    regional_pool,
    route,
    with_regions,
)
from batch.run.steps import SessionSteps
from batch.run.stops import Breaker, Stop, orderly_stops
from batch.store.checkpoint import RunLock
from batch.store.files import parse_mode, private_dir
from batch.store.inputs import Plan, read_plan
from batch.store.locations import Location, S3Url, is_s3, parse_s3_url
from batch.store.manifest import Manifest
from batch.store.report import report_schema

__all__ = ["AuditRun", "Destination", "plan_counts", "publish"]

log = logging.getLogger(LOGGER)

E = TypeVar("E", bound=BaseException)


def plan_counts(plan: Plan) -> str:
    c = plan.counts()
    return (
        f"{c['rows']} rows: {c['valid']} valid, {c['duplicates']} duplicate, "
        f"{c['invalid']} invalid, {c['blank']} blank"
    )


@dataclass(frozen=True, slots=True)
class Ending:
    """What :meth:`AuditRun.finish` leaves: the committed report and the last counts."""

    manifest: Manifest
    leftovers: Counter[str]  # NotAttempted and InvalidSessionId rows, by code
    line: str
    wall: float
    aborted: AccessError | None
    quota: QuotaUse | None = None

    @property
    def left(self) -> int:
        return self.leftovers["NotAttempted"]


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
    ) -> None:
        self.source, self.target, self.settings = source, target, settings
        self.fresh, self.budget = fresh, budget
        self.work_dir = settings.work_dir or default_work_dir()
        self.mode = parse_mode(settings.file_mode)  # of every file that holds answers
        self.run_id = uuid.uuid4().hex
        self.stop = Stop()
        self.policy = retry_policy(settings)  # the one retry policy: Rekognition and S3
        self.limiter = limiter_for(settings)
        self.gate = Gate(self.limiter, ceiling=settings.concurrency)
        self.quota: tuple[float, str] | None = None  # requests/s and where it came from
        self.tally = Tally(rate_now=lambda: self.limiter.rate)
        self.breaker = Breaker(settings.abort_after_failures, self.stop)
        self.s3_breaker = Breaker(settings.abort_after_failures, self.stop, name="S3")
        bar = settings.progress and settings.log_format == "text" and sys.stderr.isatty()
        self.display = (
            BarDisplay(self.tally)
            if bar
            else LogDisplay(self.tally, interval=settings.log_interval)
        )
        self._stack = AsyncExitStack()
        self._session: aioboto3.Session | None = None
        self._store: S3Store | None = None
        self._annotator: Annotator | None = None
        self.routes: Routes | None = None  # --region-column: each session's region
        self.regional: RegionalFetcher | None = None

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
        destination = destination_for(self.target, self.work_dir, mode=self.mode)  # checked once
        async with self._stack:
            plan = await self.stage_input()
            if isinstance(self.target, S3Url):
                await self._s3().check_bucket(self.target.bucket)
            log.info(
                "plan: %s",
                plan_counts(plan),
                extra=event("start", input=plan.origin, output=str(destination), **plan.counts()),
            )
            async with orderly_stops(
                self.stop, drain_timeout=self.settings.drain_timeout, budget=self.budget
            ):
                return await self._audit(plan, destination)

    async def _audit(self, plan: Plan, destination: Destination) -> RunSummary:
        """Resume -> fetch -> finish -> publish, holding the report's lock."""
        started_at, start = datetime.now(UTC), asyncio.get_running_loop().time()
        self.tally.total = len(plan.valid)
        with RunLock(destination.local, mode=self.mode):
            schema, self._annotator = self._annotate(plan)
            self.routes = route(plan, self.settings.region_column)
            recorder = Recorder.open(
                destination.local,
                plan,
                self.tally,
                batch_rows=self.settings.batch_rows,
                fresh=self.fresh,
                mode=self.mode,
                schema=schema,
                decorate=with_regions(self.routes, self._annotator),
            )
            try:
                todo = self.resume(plan, recorder)
                aborted = await self.fetch(todo, recorder) if todo else None
                ending = self.finish(plan, todo, recorder, aborted, started_at, start)
            except BaseException:
                recorder.abandon()
                raise
            complete = aborted is None and not self.tally.unresolved and not ending.left
            publish_error = None
            try:
                publish_error = await self.publish(destination, ending.manifest)
            finally:
                recorder.journal.close(remove=complete and publish_error is None)
        return self._summary(plan, destination, ending, publish_error)

    # --- the phases -------------------------------------------------------------------

    async def stage_input(self) -> Plan:
        """The input's plan; an S3 input is copied to the work directory and read there."""
        await self._open_s3()
        settings = self.settings
        if isinstance(self.source, Path):
            return read_plan(
                self.source,
                column=settings.column,
                fmt=settings.format,
                keep=settings.input_columns,
                flags=settings.column_flags,
            )
        url = self.source
        # A name of its own per run (the original name last: it tells the format).
        local = await local_copy(
            self._store, url, private_dir(self.work_dir / "inputs", mode=self.mode), "input"
        )
        try:
            return read_plan(
                local,
                column=settings.column,
                fmt=settings.format,
                origin=str(url),
                keep=settings.input_columns,
                flags=settings.column_flags,
            )
        except InputError as exc:
            raise InputError(str(exc).replace(str(local), str(url))) from None
        finally:
            local.unlink(missing_ok=True)

    def resume(self, plan: Plan, recorder: Recorder) -> list[str]:
        """Rows for invalid cells and the checkpoint's answers; the sessions left to fetch."""
        todo = recorder.resume(plan)
        if recorder.finished:
            log.info(
                "resuming: %d sessions already answered in %s",
                len(recorder.finished),
                recorder.journal.path,
            )
        return todo

    async def fetch(self, todo: list[str], recorder: Recorder) -> AccessError | None:
        """Fetch ``todo`` through the worker pool; the error that aborted the run, if one did.

        A failed local write (:class:`StorageError`: the disk is full) stops the run and is
        raised once the pool is done: the report cannot be written, the journal is kept.
        """
        steps = await self._steps(recorder)
        aborted: AccessError | None = None
        storage: StorageError | None = None
        try:
            async with (
                self.display.running(),
                self._pool(steps) as pool,
            ):
                for session_id in todo:
                    if self.stop:
                        break
                    await pool.put(session_id)
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
        if storage is not None:
            raise storage
        return aborted

    def finish(  # the phase's inputs, named
        self,
        plan: Plan,
        todo: list[str],
        recorder: Recorder,
        aborted: AccessError | None,
        started_at: datetime,
        start: float,
    ) -> Ending:
        """``NotAttempted`` rows for what was left; the report committed with its provenance."""
        self.stop.fetched = True
        leftovers = recorder.leftovers(todo, self.stop.reason)
        if plan.invalid:
            leftovers["InvalidSessionId"] = len(plan.invalid)
        wall = asyncio.get_running_loop().time() - start
        quota = self._quota_use(wall)
        line = summary_line(self.tally, wall=wall, extra=leftovers, quota=quota)
        line += self.regional.line() if self.regional is not None else ""
        provenance = self._provenance(plan, started_at=started_at, line=line, quota=quota)
        manifest = recorder.commit(provenance, input_sha256=plan.sha256)
        return Ending(manifest, leftovers, line, wall, aborted, quota)

    async def publish(self, destination: Destination, manifest: Manifest) -> AuditError | None:
        """Upload an S3 report (:func:`publish`); the error that kept it local, if any."""
        if destination.remote is None:
            return None
        return await publish(self._s3(), destination, manifest, self.run_id)

    # --- the parts --------------------------------------------------------------------

    async def _open_s3(self) -> None:
        """The AWS session and the S3 store, when an input, output or feature needs S3."""
        if not self.needs_s3() or self._store is not None:
            return
        self._session = await open_session(self.settings)
        store = open_store(
            self.settings,
            self._session,
            self.policy,
            give_up=lambda: bool(self.stop),
            on_attempt=self.s3_breaker.record,  # an S3 outage ends the run early too
        )
        self._store = await self._stack.enter_async_context(store)

    def _s3(self) -> S3Store:
        assert self._store is not None, "S3 is needed but no store was opened"
        return self._store

    async def _steps(self, recorder: Recorder) -> SessionSteps:
        """The per-session chain on the run's Rekognition client, opened here."""
        saver = self._image_saver()
        if self.settings.verify_evidence and self._store is None:
            raise ConfigError("invalid setting 'verify_evidence': needs S3 (no store was opened)")
        self._session = self._session or await open_session(self.settings)
        if self.routes is not None:  # a client, limiter and gate per region, made as needed
            self.regional = RegionalFetcher(
                self.routes,
                self.settings,
                self._session,
                self._stack,
                self.policy,
                give_up=lambda: bool(self.stop),
                observe=self._observe,
            )
            self.tally.rate_now = self.regional.rate
            return SessionSteps(
                self.regional,
                recorder.record,
                saver=saver,
                evidence_store=self._store if self.settings.verify_evidence else None,
            )
        self.quota = await quota_for(self.settings, self._session)
        if self.quota is not None:  # the cap (quota x share) is the limiter's from the start
            self.limiter = limiter_for(self.settings, self.quota[0])
            self.gate = Gate(self.limiter, ceiling=self.settings.concurrency)
        client = await self._stack.enter_async_context(open_client(self.settings, self._session))
        paced = PacedCall(
            self.gate,
            self.policy,
            give_up=lambda: bool(self.stop),
            on_attempt=self._observe,
            on_cut=lambda: log_rate_cut(self.limiter),
        )
        return SessionSteps(
            Fetcher(client, paced),
            recorder.record,
            evidence_store=self._store if self.settings.verify_evidence else None,
            saver=saver,
        )

    def _pool(self, steps: SessionSteps) -> AbstractAsyncContextManager[Pool | RegionalPool]:
        """The worker pool; across regions, one per region (no region holds another's)."""
        concurrency = self.settings.concurrency
        if self.regional is None:
            return worker_pool(steps, concurrency=concurrency, stop=self.stop)
        regions = self.regional.region_of
        return regional_pool(steps, route=regions, concurrency=concurrency, stop=self.stop)

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

    def _observe(self, error: BaseException | None) -> None:
        """Every Rekognition attempt: counted, and heard by the breaker."""
        self.tally.attempt(error)
        self.breaker.record(error)

    def _image_saver(self) -> ImageSaver | None:
        folder = self.settings.save_images
        if folder is None:
            return None
        if is_s3(folder):
            if self._store is None:
                raise ConfigError("invalid setting 'save_images': an s3:// folder needs S3")
            return S3Saver(self._store, parse_s3_url(folder, "save_images"))
        return FolderSaver(Path(folder))

    def _quota_use(self, wall: float) -> QuotaUse | None:
        if self.quota is None or self.limiter.cap is None:
            return None
        t = self.tally
        rate = t.requests / wall if wall > 0 else 0.0
        return QuotaUse(
            self.quota[0], self.limiter.cap, self.quota[1], rate, t.throttles, t.requests
        )

    def _provenance(
        self, plan: Plan, *, started_at: datetime, line: str, quota: QuotaUse | None
    ) -> dict[str, Any]:
        return {
            "tool": "liveness-audit",
            "tool_version": __version__,
            "run_id": self.run_id,
            "started_at": started_at.isoformat(),
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
            "pool": {"ceiling": self.gate.ceiling, "in_flight_max": self.gate.most},
            "summary": line,
            **self._regions(),
        }

    def _regions(self) -> dict[str, Any]:
        """The provenance's ``regions`` (a run across regions): sessions and calls of each."""
        if self.routes is None:
            return {}
        calls = self.regional.counts() if self.regional is not None else {}
        return {"regions": {"sessions": self.routes.counts(), "calls": calls}}

    def _summary(
        self,
        plan: Plan,
        destination: Destination,
        ending: Ending,
        publish_error: AuditError | None,
    ) -> RunSummary:
        tally = self.tally
        return RunSummary(
            run_id=self.run_id,
            report=str(destination),
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
            reconciliation=self._annotator.counts() if self._annotator else None,
            kept_conflicts=plan.conflicts,
        )


async def publish(
    store: S3Store, destination: Destination, manifest: Manifest, run_id: str
) -> AuditError | None:
    """Upload the committed report; on failure keep it (and the checkpoint) locally."""
    assert destination.remote is not None
    metadata = {
        "rows": str(manifest.rows),
        "rows-sha256": manifest.rows_sha256,
        "input-sha256": manifest.input_sha256,
        "run-id": run_id,
    }
    try:
        await store.upload(destination.local, destination.remote, metadata=metadata)
    except asyncio.CancelledError:
        # A second signal: stop at once, but say where the report is; nothing is lost.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return PublishError(
            f"stopped during the upload to {destination.remote}; the report is complete at "
            f"{destination.local} and a rerun of the same command uploads it"
        )
    except (ServiceError, AccessError) as exc:
        kept = (
            f"uploading the report to {destination.remote} failed ({exc}); it is complete "
            f"at {destination.local} and a rerun of the same command uploads it without "
            "fetching again"
        )
        where = event("upload_failed", report=str(destination.local))
        log.error("%s", kept, extra=where)  # noqa: TRY400  # one line; no traceback in cron mail
        if isinstance(exc, AccessError):
            return AccessError(kept, code=exc.code)
        return PublishError(kept)
    destination.local.unlink(missing_ok=True)  # the S3 object is the report now
    log.info("uploaded the report to %s", destination.remote)
    return None


def _first(errors: tuple[BaseException, ...], kind: type[E]) -> E:
    for error in errors:
        if isinstance(error, kind):
            return error
        if isinstance(error, BaseExceptionGroup):
            return _first(error.exceptions, kind)
    raise AssertionError(f"no {kind.__name__} in the group")
