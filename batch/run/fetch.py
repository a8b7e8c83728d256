"""Step one of a session: its answer from Rekognition, as an :class:`Outcome`.

Every attempt, retries included, is a :class:`~batch.aws.paced.PacedCall`: it passes the
limiter, and the limiter hears of throttles and successes. What is particular to this
call is here: temporary credentials that expire mid-run are retried a few times (the
credential chain refreshes them), and a session whose attempts end in a per-session or
retryable error becomes a failed :class:`Outcome` instead of an exception.
"""

from __future__ import annotations

import logging
from typing import Protocol

from batch.aws.convert import EXPIRED_CODES
from batch.aws.paced import PacedCall
from batch.config import Settings
from batch.errors import CredentialsError, RetryableError, SessionError, StaleCredentialsError
from batch.logs import LOGGER, event
from batch.model import Outcome, SessionResult
from batch.pacing.limiter import Limiter

__all__ = ["AUTO_MAX_RATE", "Answers", "Fetcher", "limiter_for", "log_rate_cut"]

log = logging.getLogger(LOGGER)

AUTO_MAX_RATE = 10_000.0  # the ceiling when no --rate is given: the quota decides


def limiter_for(settings: Settings) -> Limiter:
    """The Rekognition limiter: at ``rate``, or (unset) starting low to find the quota."""
    if settings.rate is None:
        return Limiter(AUTO_MAX_RATE, start=settings.rate_start, decrease=settings.rate_decrease)
    return Limiter(settings.rate, decrease=settings.rate_decrease)


def log_rate_cut(limiter: Limiter) -> None:
    """The log line (and ``rate`` event) of a throttle that cut the limiter's rate."""
    rate = limiter.rate
    log.info(
        "throttled: limiter now %.1f requests/s",
        rate,
        extra=event("rate", rate=round(rate, 3), cuts=limiter.cuts),
    )


class Answers(Protocol):
    """What the fetcher needs of a client (:class:`batch.aws.rekognition.LivenessClient`)."""

    async def get(self, session_id: str) -> SessionResult: ...


class Fetcher:
    """One session through a paced call to the client: ``await fetcher.fetch(id)``."""

    expired_tolerance = 3

    def __init__(self, client: Answers, paced: PacedCall) -> None:
        self._client = client
        self._paced = paced
        self._expired = 0  # ExpiredToken answers in a row, across all sessions

    async def fetch(self, session_id: str) -> Outcome:
        attempts = 0

        async def attempt() -> SessionResult:
            nonlocal attempts
            attempts += 1
            return await self._get(session_id)

        try:
            result = await self._paced(attempt)
        except (RetryableError, SessionError) as exc:
            return Outcome.failed(session_id, exc, attempts)
        return Outcome.answered(result, attempts)

    async def _get(self, session_id: str) -> SessionResult:
        try:
            result = await self._client.get(session_id)
        except CredentialsError as exc:
            if exc.code not in EXPIRED_CODES or self._expired >= self.expired_tolerance:
                raise
            # Temporary credentials ran out mid-run: the client's credential chain
            # refreshes them before the next call, so try again (a few times).
            self._expired += 1
            raise StaleCredentialsError(exc.code, str(exc)) from exc
        self._expired = 0
        return result
