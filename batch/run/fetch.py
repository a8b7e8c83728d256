"""One session through the limiter, the retry policy and the client: an :class:`Outcome`.

Every attempt, retries included, passes the limiter, and the limiter hears of throttles
and successes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from batch.aws.convert import EXPIRED_CODES
from batch.aws.rekognition import LivenessClient
from batch.errors import (
    CredentialsError,
    RetryableError,
    ServiceError,
    SessionError,
    StaleCredentialsError,
    ThrottledError,
)
from batch.logs import LOGGER, event
from batch.model import Outcome, SessionResult
from batch.pacing.limiter import Limiter
from batch.pacing.retry import RetryPolicy
from batch.run.stops import Stop

__all__ = ["Fetcher"]

log = logging.getLogger(LOGGER)


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
                    if self._limiter.throttled(sent_at):
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
