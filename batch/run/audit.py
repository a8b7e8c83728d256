"""One audit run: a :class:`~batch.store.inputs.Plan` in, a committed Parquet report out.

Everything a run needs (client, limiter, retry policy, report writer) is built here,
inside the running loop, from :class:`~batch.config.Settings`, and passed down. The report
always holds every unique session exactly once: fetched sessions as they finished,
rejected cells as ``InvalidSessionId`` rows, and sessions the run never got to (stopped
or aborted) as ``NotAttempted`` rows that a rerun fetches.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aioboto3

from batch import __version__
from batch.aws.rekognition import open_client
from batch.aws.s3 import S3Store
from batch.aws.session import retry_policy
from batch.config import Settings
from batch.errors import (
    AccessError,
    AuditError,
    ConfigError,
    PublishError,
    ServiceError,
)
from batch.evidence import verify_evidence, with_evidence
from batch.logs import LOGGER, event
from batch.model import Outcome, RunSummary
from batch.pacing.limiter import Limiter
from batch.run.fetch import Fetcher
from batch.run.pool import worker_pool
from batch.run.progress import Tally, summary_line
from batch.run.stops import Breaker, Stop
from batch.store.checkpoint import Journal, RunLock, journal_path
from batch.store.images import FolderSaver, ImageSaver, S3Saver
from batch.store.inputs import Plan
from batch.store.locations import S3Url, is_s3, parse_s3_url
from batch.store.manifest import Manifest
from batch.store.report import ReportWriter, invalid_row, outcome_row, revive

__all__ = [
    "Destination",
    "Display",
    "limiter_for",
    "publish",
    "run_audit",
]

log = logging.getLogger(LOGGER)


class Display(Protocol):
    def running(self) -> AbstractAsyncContextManager[None]: ...


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the report goes: written at ``local``, then published to ``remote`` if set.

    For an S3 report ``local`` lies in the work directory, with the checkpoint beside it,
    so an interrupted run resumes there and only a complete report is uploaded.
    """

    local: Path
    remote: S3Url | None = None

    def __str__(self) -> str:
        return str(self.remote or self.local)


AUTO_MAX_RATE = 10_000.0  # the ceiling when no --rate is given: the quota decides


def limiter_for(settings: Settings) -> Limiter:
    if settings.rate is None:  # no rate given: start low and find the quota
        return Limiter(AUTO_MAX_RATE, start=settings.rate_start, decrease=settings.rate_decrease)
    return Limiter(settings.rate, decrease=settings.rate_decrease)


async def run_audit(
    plan: Plan,
    settings: Settings,
    destination: Destination | Path,
    *,
    stop: Stop,
    session: aioboto3.Session | None = None,
    store: S3Store | None = None,
    fresh: bool = False,
    display: Display | None = None,
    tally: Tally | None = None,
) -> RunSummary:
    """Fetch every valid session of ``plan`` and commit the report at ``destination``.

    Resumes from the checkpoint journal of an earlier run of the same input unless
    ``fresh``; holds the report's run lock throughout. ``store`` (S3) is needed for an S3
    destination, evidence checks and saving images to S3.
    """
    if isinstance(destination, Path):
        destination = Destination(destination)
    output = destination.local
    loop = asyncio.get_running_loop()
    started_at, start = datetime.now(UTC), loop.time()
    run_id = uuid.uuid4().hex
    tally = tally or Tally()
    tally.total = len(plan.valid)
    with RunLock(output):
        writer = ReportWriter(output, batch_rows=settings.batch_rows)
        journal: Journal | None = None
        try:
            journal = Journal.open(journal_path(output), _identity(plan), fresh=fresh)
            for invalid in plan.invalid:
                writer.add(invalid_row(invalid))
            finished = _replay(journal, plan, writer, tally)
            if finished:
                log.info(
                    "resuming: %d sessions already answered in %s", len(finished), journal.path
                )

            def record(outcome: Outcome, paths: Mapping[str, str] | None) -> None:
                row = outcome_row(outcome, paths)
                writer.add(row)
                if outcome.final:
                    journal.append(row)
                finished.add(outcome.session_id)
                tally.finished(outcome)

            todo = [sid for sid in plan.valid if sid not in finished]
            aborted = None
            if todo:
                aborted = await _fetch_all(
                    todo, settings, stop, record, display, tally, session=session, store=store
                )
            stop.fetched = True
            leftovers = _add_leftovers(todo, finished, stop, writer)
            if plan.invalid:
                leftovers["InvalidSessionId"] = len(plan.invalid)
            wall = loop.time() - start
            line = summary_line(tally, wall=wall, extra=leftovers)
            manifest = writer.commit(
                _provenance(
                    plan, settings, run_id=run_id, started_at=started_at, tally=tally, line=line
                ),
                input_sha256=plan.sha256,
            )
        except BaseException:
            writer.abandon()
            if journal is not None:
                journal.close()
            raise
        complete = aborted is None and not tally.unresolved and not leftovers["NotAttempted"]
        publish_error = None
        try:
            if destination.remote is not None:
                assert store is not None, "an S3 destination needs the S3 store"
                publish_error = await publish(store, destination, manifest, run_id)
        finally:
            journal.close(remove=complete and publish_error is None)
    return RunSummary(
        run_id=run_id,
        report=str(destination),
        sessions=len(plan.valid) + len(plan.invalid),
        unresolved=tally.unresolved,
        not_attempted=leftovers["NotAttempted"],
        aborted=aborted,
        stop_reason=stop.reason,
        line=line,
        by_status=dict(tally.by_status),
        by_error=dict(tally.by_error + leftovers),
        requests=tally.requests,
        throttled=tally.throttles,
        wall=wall,
        manifest=manifest,
        publish_error=publish_error,
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


def _identity(plan: Plan) -> dict[str, str]:
    """What a checkpoint must match to be resumed: the same input read the same way."""
    return {"input_sha256": plan.sha256, "input_column": plan.column, "input_format": plan.format}


def _replay(journal: Journal, plan: Plan, writer: ReportWriter, tally: Tally) -> set[str]:
    """Copy the rows of earlier runs into the report; return their session IDs."""
    wanted = set(plan.valid)
    done: set[str] = set()
    for row in map(revive, journal.replay()):
        session_id = row["session_id"]
        if session_id in wanted and session_id not in done:
            writer.add(row)
            done.add(session_id)
            tally.replayed(row.get("status"), row.get("error_code"))
    return done


async def _fetch_all(  # the run's parts, passed down explicitly
    session_ids: Iterable[str],
    settings: Settings,
    stop: Stop,
    record: Callable[[Outcome, Mapping[str, str] | None], None],
    display: Display | None,
    tally: Tally,
    *,
    session: aioboto3.Session | None,
    store: S3Store | None,
) -> AccessError | None:
    """Fetch through the worker pool; return the error that aborted the run, if one did."""
    saver = _image_saver(settings, store)
    if settings.verify_evidence and store is None:
        raise ConfigError("invalid setting 'verify_evidence': needs S3 (no store was opened)")
    async with open_client(settings, session) as client:
        limiter = limiter_for(settings)
        tally.rate_now = lambda: limiter.rate
        breaker = Breaker(settings.abort_after_failures, stop)

        def observe(error: BaseException | None) -> None:
            tally.attempt(error)
            breaker.record(error)

        fetcher = Fetcher(client, limiter, retry_policy(settings), stop, on_attempt=observe)

        async def handle(session_id: str) -> None:
            outcome = await fetcher.fetch(session_id)
            if settings.verify_evidence and store is not None and outcome.result is not None:
                outcome = with_evidence(outcome, await verify_evidence(store, outcome.result))
            paths = None
            if saver is not None:
                try:
                    paths = await saver.save(outcome)
                except (ServiceError, OSError) as exc:
                    message = f"could not save the images: {exc}"
                    outcome = replace(
                        outcome, error_code="ImageNotSaved", error_message=message, final=False
                    )
            record(outcome, paths)

        aborted: AccessError | None = None
        try:
            async with (
                display.running() if display else nullcontext(),
                worker_pool(handle, concurrency=settings.concurrency, stop=stop) as pool,
            ):
                for session_id in session_ids:
                    if stop:
                        break
                    await pool.put(session_id)
        except* AccessError as group:
            aborted = _first(group.exceptions)
            stop.request(f"aborted: {aborted}")
        except* asyncio.CancelledError:
            # A second signal or the drain deadline cancelled the workers: keep what is done.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            stop.request("interrupted")
    return aborted


def _image_saver(settings: Settings, store: S3Store | None) -> ImageSaver | None:
    if settings.save_images is None:
        return None
    if is_s3(settings.save_images):
        if store is None:
            raise ConfigError("invalid setting 'save_images': an s3:// folder needs S3")
        return S3Saver(store, parse_s3_url(settings.save_images, "save_images"))
    return FolderSaver(Path(settings.save_images))


def _first(errors: tuple[BaseException, ...]) -> AccessError:
    for error in errors:
        if isinstance(error, AccessError):
            return error
        if isinstance(error, BaseExceptionGroup):
            return _first(error.exceptions)
    raise AssertionError("no AccessError in the group")


def _add_leftovers(
    todo: Iterable[str], finished: set[str], stop: Stop, writer: ReportWriter
) -> Counter[str]:
    """A ``NotAttempted`` row for each session the run did not get to."""
    because = stop.reason or "stopped"
    why = f"run ended before this session was fetched ({because}); a rerun fetches it"
    leftovers = Counter[str]()
    for session_id in todo:
        if session_id not in finished:
            writer.add(outcome_row(Outcome.not_attempted(session_id, why)))
            leftovers["NotAttempted"] += 1
    return leftovers


def _provenance(
    plan: Plan,
    settings: Settings,
    *,
    run_id: str,
    started_at: datetime,
    tally: Tally,
    line: str,
) -> dict[str, Any]:
    return {
        "tool": "liveness-audit",
        "tool_version": __version__,
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "input_path": plan.origin,
        "input_sha256": plan.sha256,
        "input_format": plan.format,
        "input_column": plan.column,
        "input_counts": plan.counts(),
        "settings": settings.public(),
        "requests": tally.requests,
        "throttled": tally.throttles,
        "summary": line,
    }
