"""The worker pool: session IDs in, :class:`Outcome` records out.

``source -> scheduler (limiter + retry) -> client -> sink``: :func:`worker_pool` owns a
task group of ``concurrency`` workers fed by a bounded queue, so memory does not grow
with the input and leaving the ``async with`` block means every worker has finished or
been cancelled (as aiometer's ``amap``). Each worker takes one session at a time and runs
:meth:`Fetcher.fetch`, which passes every attempt, retries included, through the limiter
and tells the limiter about throttles and successes.

Stopping: :meth:`Stop.request` (a signal, a time budget) makes workers take no new session
and abandon further retries; what is in flight completes. An :class:`AccessError` from any
worker cancels the pool at once: it is not about one session.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from batch.client import EXPIRED_CODES, LivenessClient, SessionResult
from batch.errors import (
    CredentialsError,
    RetryableError,
    ServiceError,
    SessionError,
    StaleCredentialsError,
    ThrottledError,
)
from batch.limiter import Limiter
from batch.logs import LOGGER, event
from batch.retry import RetryPolicy

if TYPE_CHECKING:
    from batch.evidence import Evidence

log = logging.getLogger(LOGGER)

__all__ = ["Breaker", "Fetcher", "Outcome", "Pool", "Stop", "worker_pool"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one session: a result, or the error that ended its attempts."""

    session_id: str
    result: SessionResult | None
    error_code: str | None
    error_message: str | None
    attempts: int
    fetched_at: datetime | None
    final: bool  # a definitive answer; False means a rerun should try again
    evidence: Mapping[str, Evidence] | None = None  # --verify-evidence, by image name

    @classmethod
    def answered(cls, result: SessionResult, attempts: int) -> Outcome:
        return cls(result.session_id, result, None, None, attempts, datetime.now(UTC), True)

    @classmethod
    def failed(cls, session_id: str, error: ServiceError, attempts: int) -> Outcome:
        final = isinstance(error, SessionError)
        now = datetime.now(UTC)
        return cls(session_id, None, error.code, error.message, attempts, now, final)

    @classmethod
    def not_attempted(cls, session_id: str, message: str) -> Outcome:
        return cls(session_id, None, "NotAttempted", message, 0, None, False)


class Stop:
    """A request to stop taking new sessions; true once requested, with the first reason.

    ``fetched`` turns true when no call is in flight any more (the report is being
    written): a drain deadline has nothing left to cut short then.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.fetched = False

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def __bool__(self) -> bool:
        return self.reason is not None


class Breaker:
    """Stops the run when the endpoint fails ``threshold`` calls in a row.

    Throttles and per-session answers show the endpoint is alive and reset the streak;
    server errors, resets and timeouts extend it. An endpoint that is down for everything
    then ends the run early instead of spending every session's attempts.
    """

    def __init__(self, threshold: int, stop: Stop) -> None:
        self.threshold = threshold
        self.streak = 0
        self._stop = stop

    def record(self, error: BaseException | None) -> None:
        if error is None or isinstance(error, ThrottledError | SessionError):
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.threshold and not self._stop:
            code = getattr(error, "code", type(error).__name__)
            self._stop.request(
                f"the endpoint failed {self.streak} calls in a row (last: {code}); "
                "stopping early, check the endpoint and the network"
            )


class Fetcher:
    """One session through limiter, retry policy and client."""

    expired_tolerance = 3

    def __init__(
        self,
        client: LivenessClient,
        limiter: Limiter,
        policy: RetryPolicy,
        stop: Stop,
        *,
        on_attempt: Callable[[BaseException | None], None] = lambda _: None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._policy = policy
        self._stop = stop
        self._on_attempt = on_attempt
        self._expired = 0  # ExpiredToken answers in a row, across all sessions
        self._random = (rng or random.Random()).random  # noqa: S311  # jitter, not crypto

    async def fetch(self, session_id: str) -> Outcome:
        attempts = 0

        async def attempt(n: int) -> SessionResult:
            nonlocal attempts
            attempts = n
            async with self._limiter as sent_at:
                try:
                    result = await self._client.get(session_id)
                except ThrottledError as exc:
                    cuts = self._limiter.cuts
                    self._limiter.throttled(sent_at)
                    if self._limiter.cuts != cuts:
                        rate = self._limiter.rate
                        log.info(
                            "throttled: limiter now %.1f requests/s",
                            rate,
                            extra=event("rate", rate=round(rate, 3), cuts=self._limiter.cuts),
                        )
                    self._on_attempt(exc)
                    raise
                except ServiceError as exc:
                    self._on_attempt(exc)
                    raise
                except CredentialsError as exc:
                    self._on_attempt(exc)
                    if exc.code not in EXPIRED_CODES or self._expired >= self.expired_tolerance:
                        raise
                    # Temporary credentials ran out mid-run: the client's credential chain
                    # refreshes them before the next call, so try again (a few times).
                    self._expired += 1
                    raise StaleCredentialsError(exc.code, str(exc)) from exc
            self._expired = 0
            self._limiter.succeeded(sent_at)
            self._on_attempt(None)
            return result

        try:
            result = await self._policy.call(
                attempt, random=self._random, give_up=lambda: bool(self._stop)
            )
        except (RetryableError, SessionError) as exc:
            return Outcome.failed(session_id, exc, attempts)
        return Outcome.answered(result, attempts)


class Pool:
    """Handle to a running pool: feed session IDs with :meth:`put`."""

    def __init__(self, queue: asyncio.Queue[str | None]) -> None:
        self._queue = queue

    async def put(self, session_id: str) -> None:
        await self._queue.put(session_id)


@asynccontextmanager
async def worker_pool(
    handle: Callable[[str], Awaitable[None]],
    *,
    concurrency: int,
    stop: Stop,
    queue_size: int | None = None,
) -> AsyncIterator[Pool]:
    """Run ``handle(session_id)`` in ``concurrency`` workers for every ID put in the pool.

    Leaving the block normally waits until every queued ID is handled. After ``stop`` is
    requested, workers finish the session in hand and skip what is still queued (the
    caller finds those unhandled); the producer should stop putting.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size or 2 * concurrency)

    async def worker() -> None:
        while (session_id := await queue.get()) is not None:
            if not stop:  # once stopping, drain without starting anything new
                await handle(session_id)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
        yield Pool(queue)
        for _ in range(concurrency):
            await queue.put(None)  # one end-of-input marker per worker
