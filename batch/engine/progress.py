"""Counting what a run did, and showing it while it runs.

:class:`Tally` counts (cheap, per request). A display refreshes from the tally on its own
timer, never per request: :class:`BarDisplay` draws a rich progress bar on a terminal;
:class:`LogDisplay` writes a plain log line every ``interval`` seconds when stderr is not
a terminal (cron) or with ``--no-progress``. :func:`summary_line` is the final line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from batch.durations import format_duration
from batch.errors import ThrottledError
from batch.logs import LOGGER, event
from batch.model import Outcome, QuotaUse

__all__ = ["BarDisplay", "LogDisplay", "Tally", "quota_text", "summary_line"]

log = logging.getLogger(LOGGER)


@dataclass
class Tally:
    """Running counts of a run; the limiter's rate is read through ``rate_now``."""

    total: int = 0
    done: int = 0
    requests: int = 0
    throttles: int = 0
    failures: int = 0
    unresolved: int = 0
    pending: int = 0  # sessions whose kept answer is CREATED/IN_PROGRESS (closing count)
    resumed: int = 0  # settled sessions of an unfinished run's checkpoint, not asked
    kept: int = 0  # settled sessions of the existing report, not asked
    by_status: Counter[str] = field(default_factory=Counter)
    by_error: Counter[str] = field(default_factory=Counter)
    rate_now: Callable[[], float] = lambda: 0.0
    waiting_now: Callable[[], int] = lambda: 0  # pending sessions waiting to be asked again

    def attempt(self, error: BaseException | None) -> None:
        self.requests += 1
        if isinstance(error, ThrottledError):
            self.throttles += 1
        elif error is not None:
            self.failures += 1

    def replayed(
        self, status: str | None, error_code: str | None, *, from_report: bool = False
    ) -> None:
        """A session answered by an earlier run (its report or checkpoint): not asked."""
        if from_report:
            self.kept += 1
        else:
            self.resumed += 1
        self._count(status, error_code)

    def finished(self, outcome: Outcome) -> None:
        status = outcome.result.status if outcome.result is not None else None
        self._count(status, outcome.error_code)
        if not outcome.final:
            self.unresolved += 1

    def _count(self, status: str | None, error_code: str | None) -> None:
        self.done += 1
        if status is not None:
            self.by_status[status] += 1
        if error_code is not None:  # with a status too: evidence findings
            self.by_error[error_code] += 1


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def quota_text(use: QuotaUse) -> str:
    """The share of the quota a run used, its cap and its throttled share, for the summary."""
    return (
        f"quota: {use.used:.2f} used ({use.rate:.1f} of {use.quota:g} req/s from {use.source},"
        f" cap {use.cap:g}/s), {100 * use.throttled_share:.1f}% of requests throttled"
    )


def summary_line(
    tally: Tally,
    *,
    wall: float,
    extra: Counter[str] | None = None,
    quota: QuotaUse | None = None,
) -> str:
    """Counts by status and by error, wall time and achieved request rate, on one line;
    with a known quota, the share of it used (:func:`quota_text`)."""
    errors = tally.by_error + (extra or Counter())
    rate = tally.requests / wall if wall > 0 else 0.0
    return (
        f"{tally.done + sum((extra or Counter()).values())} sessions"
        f" | status: {_counts(tally.by_status)}"
        f" | errors: {_counts(errors)}"
        f" | {tally.requests} requests in {wall:.1f}s ({rate:.1f} req/s),"
        f" {tally.throttles} throttled, {tally.failures} failed attempts"
        + (f" | {tally.pending} pending" if tally.pending else "")
        + (f" | {tally.kept} kept from the report" if tally.kept else "")
        + (f" | {tally.resumed} resumed from the checkpoint" if tally.resumed else "")
        + (f" | {quota_text(quota)}" if quota is not None else "")
    )


@asynccontextmanager
async def _ticking(tick: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run ``tick`` as a task for the life of the block; cancel it on the way out."""
    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class LogDisplay:
    """A plain progress line every ``interval`` seconds, for logs and cron mail."""

    def __init__(self, tally: Tally, *, interval: float) -> None:
        self._tally = tally
        self._interval = interval

    def line(self, elapsed: float) -> str:
        t = self._tally
        share = 100 * t.done / t.total if t.total else 100.0
        rate = t.requests / elapsed if elapsed > 0 else 0.0
        left = t.total - t.done
        done_rate = t.done / elapsed if elapsed > 0 else 0.0
        eta = format_duration(left / done_rate) if done_rate > 0 else "unknown"
        waiting = t.waiting_now()
        return (
            f"progress: {t.done}/{t.total} sessions ({share:.0f}%), {rate:.1f} req/s, "
            f"{t.throttles} throttled, limiter {t.rate_now():.1f}/s, eta {eta}"
            + (f", {waiting} pending waiting to settle" if waiting else "")
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def tick() -> None:
            while True:
                await asyncio.sleep(self._interval)
                elapsed = loop.time() - start
                t = self._tally
                fields = event(
                    "progress",
                    done=t.done,
                    total=t.total,
                    requests=t.requests,
                    throttled=t.throttles,
                    limiter_rate=round(t.rate_now(), 3),
                    waiting=t.waiting_now(),
                    elapsed_seconds=round(elapsed, 3),
                )
                log.info(self.line(elapsed), extra=fields)

        async with _ticking(tick):
            yield


class BarDisplay:
    """A rich progress bar on stderr: sessions done, request rate, throttles, ETA."""

    def __init__(self, tally: Tally, *, console: Console | None = None) -> None:
        self._tally = tally
        self._progress = Progress(
            TextColumn("[bold]auditing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>6.1f} req/s"),
            TextColumn("limiter {task.fields[limit]:.1f}/s"),
            TextColumn("{task.fields[throttles]} throttled"),
            TextColumn("{task.fields[waiting]} pending"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        t = self._tally
        task_id = self._progress.add_task(
            "audit", total=t.total, rate=0.0, limit=0.0, throttles=0, waiting=0
        )

        def refresh() -> None:
            elapsed = loop.time() - start
            rate = t.requests / elapsed if elapsed > 0 else 0.0
            self._progress.update(
                task_id,
                completed=t.done,
                total=t.total,
                rate=rate,
                limit=t.rate_now(),
                throttles=t.throttles,
                waiting=t.waiting_now(),
            )

        async def tick() -> None:
            while True:
                refresh()
                await asyncio.sleep(0.25)

        with self._progress:
            try:
                async with _ticking(tick):
                    yield
            finally:
                refresh()
