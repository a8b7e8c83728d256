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

import aioboto3

from batch.aws.convert import EXPIRED_CODES
from batch.aws.paced import PacedCall
from batch.aws.quotas import lookup_quota
from batch.config import Settings
from batch.errors import CredentialsError, RetryableError, SessionError, StaleCredentialsError
from batch.logs import LOGGER, event
from batch.model import Outcome, SessionResult
from batch.pacing.limiter import Limiter

__all__ = ["AUTO_MAX_RATE", "Answers", "Fetcher", "limiter_for", "log_rate_cut", "quota_for"]

log = logging.getLogger(LOGGER)

AUTO_MAX_RATE = 10_000.0  # the ceiling when no --rate is given: the quota decides


def limiter_for(settings: Settings, quota: float | None = None) -> Limiter:
    """The Rekognition limiter: at ``rate``, or (unset) starting low to find the quota.

    With a quota (``quota``, else the ``quota`` setting's number) the limiter never goes
    above ``quota_share`` x quota (its ``cap``: the lower of that and ``rate`` is the
    maximum), and holds back ``quota_hold`` seconds after a throttle at or below it.
    """
    quota = settings.quota_tps if quota is None else quota
    cap = None if quota is None else quota * settings.quota_share
    return Limiter(
        AUTO_MAX_RATE if settings.rate is None else settings.rate,
        start=settings.rate_start if settings.rate is None else None,
        decrease=settings.rate_decrease,
        cap=cap,
        hold=settings.quota_hold,
    )


def log_rate_cut(limiter: Limiter, *, region: str | None = None) -> None:
    """The log line (and ``rate`` event) of a throttle that cut the limiter's rate (of
    ``region``'s limiter, in a run across regions)."""
    pace = limiter.pace()
    holding = (
        f" and holding there {limiter.hold:g}s: throttled within this run's share, "
        "the application is busy"
        if pace.holding
        else ""
    )
    log.info(
        "throttled%s: limiter now %.1f requests/s%s",
        "" if region is None else f" in {region}",
        pace.rate,
        holding,
        extra=event(
            "rate",
            **({} if region is None else {"region": region}),
            rate=round(pace.rate, 3),
            cuts=pace.cuts,
            cap=None if pace.cap is None else round(pace.cap, 3),
            holding=pace.holding,
        ),
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


async def quota_for(
    settings: Settings, session: aioboto3.Session, *, region: str | None = None
) -> tuple[float, str] | None:
    """The run's quota (requests/s) in ``region`` (None: the session's) and where it came
    from; logged, with its cap.

    ``--quota TPS`` is taken as given; ``--quota auto`` is read from Service Quotas
    (:func:`batch.aws.quotas.lookup_quota`), and when that fails the log says why and the
    run goes on as with no quota. None: no quota known.
    """
    if settings.quota is None:
        return None
    found: tuple[float, str] | None
    if settings.quota == "auto":
        lookup = await lookup_quota(session, settings, region=region)
        found = None if lookup.tps is None else (lookup.tps, "Service Quotas")
        log.info(
            "quota: %s",
            lookup.describe(),
            extra=event("quota", quota=lookup.tps, source="Service Quotas", reason=lookup.reason),
        )
    else:
        assert settings.quota_tps is not None  # a number, by the setting's validator
        found = (settings.quota_tps, "--quota")
    if found is not None:
        cap = found[0] * settings.quota_share
        rate = (
            "" if settings.rate is None or settings.rate >= cap else f" (--rate {settings.rate:g})"
        )
        log.info(
            "quota: %g requests/s (%s); this run uses at most %g/s, share %g%s",
            found[0],
            found[1],
            min(cap, settings.rate or cap),
            settings.quota_share,
            rate,
            extra=event("quota", quota=found[0], source=found[1], cap=round(cap, 3)),
        )
    return found
