"""One audit run: a :class:`~batch.sources.Plan` in, a committed Parquet report out.

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
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from batch import __version__
from batch.checkpoint import Journal, RunLock, journal_path
from batch.client import open_client
from batch.config import Settings
from batch.errors import AccessError, RetryableError
from batch.limiter import Limiter
from batch.logs import LOGGER
from batch.progress import Tally, summary_line
from batch.report import ImageSaver, ReportWriter, invalid_row, outcome_row
from batch.retry import RetryPolicy
from batch.scheduler import Breaker, Fetcher, Outcome, Stop, worker_pool
from batch.sources import Plan

__all__ = ["Display", "RunSummary", "run_audit"]

log = logging.getLogger(LOGGER)


class Display(Protocol):
    def running(self) -> AbstractAsyncContextManager[None]: ...


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How a run ended; the CLI turns it into an exit code and a summary line."""

    run_id: str
    report: Path
    sessions: int
    unresolved: int
    not_attempted: int
    aborted: AccessError | None
    stop_reason: str | None
    line: str
    by_status: dict[str, int]
    by_error: dict[str, int]
    requests: int
    throttled: int
    wall: float

    @property
    def errors(self) -> int:
        """Sessions whose row carries an error code (per-session, invalid or unresolved)."""
        return sum(self.by_error.values())


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        on=(RetryableError,),
        attempts=settings.max_attempts,
        wait_initial=settings.backoff_initial,
        wait_max=settings.backoff_max,
    )


AUTO_MAX_RATE = 10_000.0  # the ceiling when no --rate is given: the quota decides


def limiter_for(settings: Settings) -> Limiter:
    if settings.rate is None:  # no rate given: start low and find the quota
        return Limiter(AUTO_MAX_RATE, start=settings.rate_start, decrease=settings.rate_decrease)
    return Limiter(settings.rate, decrease=settings.rate_decrease)


async def run_audit(
    plan: Plan,
    settings: Settings,
    output: Path,
    *,
    stop: Stop,
    fresh: bool = False,
    display: Display | None = None,
    tally: Tally | None = None,
) -> RunSummary:
    """Fetch every valid session of ``plan`` and commit the report at ``output``.

    Resumes from the checkpoint journal of an earlier run of the same input unless
    ``fresh``; holds the report's run lock throughout.
    """
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
            saver = ImageSaver(settings.save_images) if settings.save_images else None
            for invalid in plan.invalid:
                writer.add(invalid_row(invalid))
            finished = _replay(journal, plan, writer, tally)
            if finished:
                log.info(
                    "resuming: %d sessions already answered in %s", len(finished), journal.path
                )

            def record(outcome: Outcome) -> None:
                paths = saver.save(outcome) if saver else None
                row = outcome_row(outcome, paths)
                writer.add(row)
                if outcome.final:
                    journal.append(row)
                finished.add(outcome.session_id)
                tally.finished(outcome)

            todo = [sid for sid in plan.valid if sid not in finished]
            aborted = None
            if todo:
                aborted = await _fetch_all(todo, settings, stop, record, display, tally)
            leftovers = Counter[str]()
            why = _leftover_message(stop.reason)
            for session_id in todo:
                if session_id not in finished:
                    writer.add(outcome_row(Outcome.not_attempted(session_id, why)))
                    leftovers["NotAttempted"] += 1
            if plan.invalid:
                leftovers["InvalidSessionId"] = len(plan.invalid)
            wall = loop.time() - start
            line = summary_line(tally, wall=wall, extra=leftovers)
            writer.commit(
                _provenance(
                    plan, settings, run_id=run_id, started_at=started_at, tally=tally, line=line
                )
            )
            complete = aborted is None and not tally.unresolved and not leftovers["NotAttempted"]
            journal.close(remove=complete)
        except BaseException:
            writer.abandon()
            if journal is not None:
                journal.close()
            raise
    return RunSummary(
        run_id=run_id,
        report=output,
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
    )


def _identity(plan: Plan) -> dict[str, str]:
    """What a checkpoint must match to be resumed: the same input read the same way."""
    return {"input_sha256": plan.sha256, "input_column": plan.column, "input_format": plan.format}


def _replay(journal: Journal, plan: Plan, writer: ReportWriter, tally: Tally) -> set[str]:
    """Copy the rows of earlier runs into the report; return their session IDs."""
    wanted = set(plan.valid)
    done: set[str] = set()
    for row in journal.replay():
        session_id = row["session_id"]
        if session_id in wanted and session_id not in done:
            writer.add(row)
            done.add(session_id)
            tally.replayed(row.get("status"), row.get("error_code"))
    return done


async def _fetch_all(
    session_ids: Iterable[str],
    settings: Settings,
    stop: Stop,
    record: Callable[[Outcome], None],
    display: Display | None,
    tally: Tally,
) -> AccessError | None:
    """Fetch through the worker pool; return the error that aborted the run, if one did."""
    async with open_client(settings) as client:
        limiter = limiter_for(settings)
        tally.rate_now = lambda: limiter.rate
        breaker = Breaker(settings.abort_after_failures, stop)

        def observe(error: BaseException | None) -> None:
            tally.attempt(error)
            breaker.record(error)

        fetcher = Fetcher(client, limiter, retry_policy(settings), stop, on_attempt=observe)

        async def handle(session_id: str) -> None:
            record(await fetcher.fetch(session_id))

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


def _first(errors: tuple[BaseException, ...]) -> AccessError:
    for error in errors:
        if isinstance(error, AccessError):
            return error
        if isinstance(error, BaseExceptionGroup):
            return _first(error.exceptions)
    raise AssertionError("no AccessError in the group")


def _leftover_message(reason: str | None) -> str:
    because = reason or "stopped"
    return f"run ended before this session was fetched ({because}); a rerun fetches it"


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
        "input_path": str(plan.path.resolve()),
        "input_sha256": plan.sha256,
        "input_format": plan.format,
        "input_column": plan.column,
        "input_counts": plan.counts(),
        "settings": settings.public(),
        "requests": tally.requests,
        "throttled": tally.throttles,
        "summary": line,
    }
