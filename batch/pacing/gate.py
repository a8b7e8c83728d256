"""How many requests may be in flight: as many as the rate and the latency need (Little's law).

At a steady ``rate`` with answers taking ``latency`` seconds, ``rate x latency`` requests
are in flight (Little's law). A fixed pool either caps the rate below the quota (16
workers at 60 ms: at most ~270/s) or, set large, lets hundreds of requests pile up on a
service that has slowed down. :class:`Gate` wraps the limiter (aiometer's ``max_at_once``
beside its ``max_per_second``) and lets at most::

    ceil(rate x latency x headroom) + spare        (at most ``ceiling``)

callers past it at once, ``rate`` being the limiter's current rate and ``latency`` an
exponentially weighted moving average of answer times (from the limiter's release of a
request to its answer, on the same clock). ``headroom`` (1.5) absorbs latency jitter and
``spare`` (2) keeps a very low rate from being held to one request at a time. Until the
first answer the latency is taken to be ``initial`` (1 s: generous, the limiter paces
anyway). ``ceiling`` is ``--concurrency``, the number of workers and the HTTP connection
pool: an explicit limit the gate never exceeds.

The count includes callers waiting at the limiter for their slot (they hold a place in the
gate), so the limiter always has someone waiting and never loses a slot for want of a
caller, while the requests actually at the service stay near ``rate x latency``.

Use it where the limiter is used: ``async with gate as sent_at:``, then
``gate.succeeded(sent_at)`` / ``gate.throttled(sent_at)``, which also feed the latency.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Protocol

from batch.pacing.clock import LOOP, Clock

__all__ = ["Gate"]


class Paced(Protocol):
    """What the gate needs of a limiter (:class:`batch.pacing.limiter.Limiter`)."""

    @property
    def rate(self) -> float: ...

    async def acquire(self) -> float: ...

    def throttled(self, sent_at: float | None = None) -> bool: ...

    def succeeded(self, sent_at: float | None = None) -> None: ...


class Gate:
    """At most ``ceil(rate x latency x headroom) + spare`` in flight, never above ``ceiling``."""

    def __init__(
        self,
        limiter: Paced,
        *,
        ceiling: int,
        headroom: float = 1.5,
        spare: int = 2,
        smoothing: float = 0.2,
        initial: float = 1.0,
        clock: Clock = LOOP,
    ) -> None:
        if ceiling < 1 or spare < 1:
            raise ValueError(f"ceiling and spare must be at least 1, got {ceiling!r}, {spare!r}")
        if not (headroom >= 1 and 0 < smoothing <= 1 and initial > 0):
            raise ValueError("headroom must be >= 1, smoothing in (0, 1], initial > 0")
        self.limiter = limiter
        self.ceiling, self.headroom, self.spare = ceiling, headroom, spare
        self.smoothing = smoothing
        self.latency = initial  # seconds; the moving average of answer times
        self.in_flight = 0
        self.most = 0  # the most ever in flight at once
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()  # first in line first

    def _now(self) -> float:
        return self._clock.now()

    @property
    def limit(self) -> int:
        """How many may be in flight now."""
        # rounded first: a latency a hair above 0.2 s must not make 30.000001 read as 31
        wanted = math.ceil(round(self.limiter.rate * self.latency * self.headroom, 6)) + self.spare
        return min(self.ceiling, wanted)

    async def __aenter__(self) -> float:
        if self._waiters or self.in_flight >= self.limit:
            await self._wait_for_room()
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self._waiters and self.in_flight < self.limit:
            self._wake()  # the limit may have grown: let the next one look
        try:
            return await self.limiter.acquire()
        except BaseException:
            self._leave()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._leave()

    async def _wait_for_room(self) -> None:
        """Queue until woken with room: first come, first in (one woken and finding no
        room, the limit having shrunk, waits again at the head of the queue)."""
        loop = asyncio.get_running_loop()
        first = False
        while first or self._waiters or self.in_flight >= self.limit:
            waiter = loop.create_future()
            if first:
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: the wake goes to the next
                elif waiter in self._waiters:  # (a wake may have passed it over already)
                    self._waiters.remove(waiter)
                raise
            first = True
            if self.in_flight < self.limit:
                return

    def _wake(self) -> None:
        """Wake the first waiter still waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _leave(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _observe(self, sent_at: float | None) -> None:
        if sent_at is not None:
            took = max(0.0, self._now() - sent_at)
            self.latency += self.smoothing * (took - self.latency)

    def succeeded(self, sent_at: float | None = None) -> None:
        self._observe(sent_at)
        self.limiter.succeeded(sent_at)

    def throttled(self, sent_at: float | None = None) -> bool:
        self._observe(sent_at)
        return self.limiter.throttled(sent_at)
