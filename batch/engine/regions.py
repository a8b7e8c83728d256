"""One run across regions (``--region-column NAME``): each session asked in its own region.

A liveness session lives in the region that created it, and the quota is per account and
region, so a day's list with EU and US users is one run here, not two:

- :func:`route` reads each valid session's region from the plan (the column is read beside
  the IDs, as a kept column), stripped and lower-cased, and checks it against the regions
  botocore lists for ``rekognition`` in every partition. A value that is not one of them,
  and a blank cell, make the session's row an ``InvalidRegion`` error (attempts 0, never
  sent). A blank cell is not taken to mean ``--region``: a guess in the wrong region is
  answered ``SessionNotFoundException``, which reads like an answer about the session.
- :class:`RegionalFetcher` is a :class:`~batch.engine.fetch.Fetcher` to the pool: it sends each
  session to its region's own fetcher, built on the region's first session: a Rekognition
  client on the run's AWS session (``region_name`` the region; an ``endpoint_url`` setting
  serves every region), its own limiter (``--quota`` is each region's) and in-flight
  :class:`~batch.pacing.gate.Gate`, and counts each region's requests and throttles.
- :func:`regional_pool` gives each region its own workers (``--concurrency`` of them, the
  ceiling of its gate) and its own queue. One shared pool would let a slow region (a low
  quota, or throttled) hold every worker: its sessions wait at its gate while holding a
  worker, and in a mixed list every worker ends up waiting there, starving the others.
  The queues take what the producer puts without blocking (their IDs are the run's
  ``todo`` list, already in memory), so the producer never waits behind a slow region.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import botocore.session

from batch.aws.paced import PacedCall
from batch.aws.rekognition import open_client
from batch.config import Settings
from batch.engine.fetch import Fetcher, limiter_for, log_rate_cut, quota_for
from batch.engine.pool import Pool, worker_pool
from batch.engine.stops import Stop
from batch.errors import SessionError, ThrottledError
from batch.logs import LOGGER, event
from batch.model import Outcome
from batch.pacing.gate import Gate
from batch.pacing.limiter import Limiter
from batch.pacing.retry import RetryPolicy
from batch.store.inputs import Plan, display_value, normalize

__all__ = [
    "INVALID_REGION",
    "RegionalFetcher",
    "Routes",
    "known_regions",
    "regional_pool",
    "route",
]

log = logging.getLogger(LOGGER)

INVALID_REGION = "InvalidRegion"
_UNBOUNDED = sys.maxsize  # a region's queue: the run's todo list is in memory already

Decorate = Callable[[dict[str, Any]], dict[str, Any]]


@functools.cache
def known_regions() -> frozenset[str]:
    """The regions botocore knows Rekognition in, every partition (aws, aws-us-gov, ...)."""
    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("rekognition", partition_name=partition)
    )


@dataclass(frozen=True, slots=True)
class Routes:
    """Each valid session's region, or why it has none (the error message of its row)."""

    column: str
    regions: Mapping[str, str]  # session ID -> region, normalised
    rejected: Mapping[str, str]  # session ID -> why its region cell was refused

    def decorate(self, row: dict[str, Any]) -> dict[str, Any]:
        """A report row with its ``region`` (None for a rejected or unknown session)."""
        session_id = row["session_id"]
        if session_id in self.regions or session_id in self.rejected:
            row["region"] = self.regions.get(session_id)
        return row

    def counts(self) -> dict[str, int]:
        """Sessions per region, and how many were refused (``InvalidRegion``)."""
        counts: dict[str, int] = {}
        for region in self.regions.values():
            counts[region] = counts.get(region, 0) + 1
        if self.rejected:
            counts[INVALID_REGION] = len(self.rejected)
        return dict(sorted(counts.items()))


def _refusal(raw: object, column: str) -> str | None:
    """Why a region cell cannot be used (None: it can, once normalised)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return f"no region in column {column!r}"
    if not isinstance(raw, str):
        return f"region {display_value(str(raw))!r} in column {column!r} is not text"
    if normalize(raw) not in known_regions():
        return (
            f"region {display_value(raw)!r} in column {column!r} is not a region "
            "Rekognition is offered in (e.g. eu-west-1, us-east-1)"
        )
    return None


def route(plan: Plan, column: str | None) -> Routes | None:
    """Each valid session of ``plan`` and its region, read from the kept ``column``
    (None: no ``--region-column``, no routes)."""
    if column is None:
        return None
    index = [f.name for f in plan.kept_fields].index(column)
    regions: dict[str, str] = {}
    rejected: dict[str, str] = {}
    for session_id in plan.valid:
        values = plan.kept.get(session_id)
        raw = values[index] if values is not None else None
        why = _refusal(raw, column)
        if why is None:
            regions[session_id] = normalize(str(raw))
        else:
            rejected[session_id] = why
    return Routes(column, regions, rejected)


def with_regions(routes: Routes | None, decorate: Decorate) -> Decorate:
    """``decorate`` (the kept columns...), then the row's ``region``, when routed."""
    if routes is None:
        return decorate
    return lambda row: routes.decorate(decorate(row))


@dataclass
class _Region:
    """One region's parts and counts."""

    fetcher: Fetcher
    limiter: Limiter
    gate: Gate
    requests: int = 0
    throttled: int = 0


@dataclass
class RegionalFetcher:
    """``await fetch(session_id)`` in the session's region, with that region's parts.

    ``observe`` hears of every attempt in every region (the run's tally and breaker);
    ``give_up`` says the run is stopping. Each region's client is entered on ``stack``.
    """

    routes: Routes
    settings: Settings
    session: aioboto3.Session
    stack: AsyncExitStack
    policy: RetryPolicy
    give_up: Callable[[], bool] = field(kw_only=True)
    stopping: asyncio.Event | None = field(default=None, kw_only=True)  # see PacedCall
    observe: Callable[[BaseException | None], None] = field(kw_only=True)
    parts: dict[str, _Region] = field(default_factory=dict)
    _opening: dict[str, asyncio.Lock] = field(default_factory=dict)

    def region_of(self, session_id: str) -> str:
        """The session's region, or :data:`INVALID_REGION` (its own queue: never sent)."""
        return self.routes.regions.get(session_id, INVALID_REGION)

    async def fetch(self, session_id: str) -> Outcome:
        region = self.routes.regions.get(session_id)
        if region is None:
            why = self.routes.rejected.get(session_id, "no region for this session")
            return Outcome.failed(session_id, SessionError(INVALID_REGION, why), 0)
        parts = await self._parts(region)
        return await parts.fetcher.fetch(session_id)

    async def _parts(self, region: str) -> _Region:
        if (parts := self.parts.get(region)) is not None:
            return parts
        async with self._opening.setdefault(region, asyncio.Lock()):
            if region not in self.parts:
                self.parts[region] = await self._open(region)
        return self.parts[region]

    async def _open(self, region: str) -> _Region:
        """The region's quota, limiter, gate and client (on the run's stack)."""
        settings = self.settings
        quota = await quota_for(settings, self.session, region=region)
        limiter = limiter_for(settings, None if quota is None else quota[0])
        gate = Gate(limiter, ceiling=settings.concurrency)
        client = await self.stack.enter_async_context(
            open_client(settings, self.session, region=region)
        )

        def attempt(error: BaseException | None) -> None:
            parts.requests += 1
            parts.throttled += isinstance(error, ThrottledError)
            self.observe(error)

        paced = PacedCall(
            gate,
            self.policy,
            give_up=self.give_up,
            stopping=self.stopping,
            on_attempt=attempt,
            on_cut=lambda: log_rate_cut(limiter, region=region),
        )
        parts = _Region(Fetcher(client, paced), limiter, gate)
        log.info("region %s: opened its client", region, extra=event("region", region=region))
        return parts

    def rate(self) -> float:
        """The sum of the regions' limiter rates (the progress display's)."""
        return sum(p.limiter.rate for p in self.parts.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """Per region: requests, throttled, most in flight (the provenance's)."""
        return {
            region: {"requests": p.requests, "throttled": p.throttled, "in_flight_max": p.gate.most}
            for region, p in sorted(self.parts.items())
        }

    def line(self) -> str:
        """The summary line's part: ``regions: eu-west-1 120 req/0 throttled, ...``."""
        shown = ", ".join(
            f"{region} {c['requests']} req/{c['throttled']} throttled"
            for region, c in self.counts().items()
        )
        return f" | regions: {shown or 'none asked'}"


class RegionalPool:
    """Feeds each session to its region's pool: :meth:`put` never waits behind a region."""

    def __init__(self, open_pool: Callable[[str], Awaitable[Pool]], route: Callable[[str], str]):
        self._open_pool, self._route = open_pool, route
        self._pools: dict[str, Pool] = {}

    async def put(self, session_id: str) -> None:
        region = self._route(session_id)
        pool = self._pools.get(region)
        if pool is None:
            pool = self._pools[region] = await self._open_pool(region)
        await pool.put(session_id)


@asynccontextmanager
async def regional_pool(
    handle: Callable[[str], Awaitable[object]],
    *,
    route: Callable[[str], str],
    concurrency: int,
    stop: Stop,
) -> AsyncIterator[RegionalPool]:
    """A :func:`~batch.engine.pool.worker_pool` per region (``route(id)``), made on its first
    session, each of ``concurrency`` workers; leaving the block waits for all of them."""
    async with AsyncExitStack() as stack:

        async def open_pool(_: str) -> Pool:
            pool = worker_pool(handle, concurrency=concurrency, stop=stop, queue_size=_UNBOUNDED)
            return await stack.enter_async_context(pool)

        yield RegionalPool(open_pool, route)
