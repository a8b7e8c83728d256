"""An evenly paced, throttle-aware request limiter.

``asyncio_throttle.Throttler(rate_limit=N, period=1)`` is a sliding window: it admits N
requests at once and then waits for the window to slide. Rekognition meters calls with a
token bucket whose burst is small, so a client that sends a second's worth at once gets
most of that burst throttled. The window that paces evenly is one request per
``1 / rate`` seconds, ``Throttler(rate_limit=1, period=1 / rate)``, and :class:`Limiter`
is that throttler with three changes:

- it reads time from the running loop's clock (or an injected one in tests), never
  ``time.monotonic`` behind the loop's back;
- a waiter sleeps exactly until its slot instead of polling every ``retry_interval``
  (at 50 requests/s the upstream 10 ms poll quantises a 20 ms period into 20-30 ms);
- slots are handed out in arrival order (FIFO), so no worker starves.

It also adapts, as botocore's ``adaptive`` retry mode does with its token bucket: a
throttling answer cuts the rate by ``decrease`` (once per ``reaction`` seconds, however
many throttles arrive together), and every success wins back ``recovery`` of the maximum
rate per second elapsed, never above the configured maximum.

Use it as ``await limiter.acquire()`` or ``async with limiter:``; report outcomes with
:meth:`Limiter.throttled` and :meth:`Limiter.succeeded`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from asyncio_throttle.throttler import Throttler

__all__ = ["Limiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


class Limiter(Throttler):
    """One request every ``1 / rate`` seconds, slowing down when the service throttles."""

    def __init__(
        self,
        rate: float,
        *,
        decrease: float = 0.7,
        recovery: float = 0.05,
        min_rate: float | None = None,
        reaction: float = 1.0,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {decrease!r}")
        if not 0 < recovery <= 1:
            raise ValueError(f"recovery must be in (0, 1], got {recovery!r}")
        super().__init__(rate_limit=1, period=1.0 / rate)
        self.max_rate = rate
        self.min_rate = min(rate, min_rate if min_rate is not None else max(0.1, rate / 100))
        self.decrease = decrease
        self.recovery = recovery
        self.reaction = reaction
        self.cuts = 0
        self._clock = clock
        self._sleep = sleep
        self._rate = rate
        self._next_slot = -math.inf
        self._last_cut = -math.inf
        self._last_gain: float | None = None

    @property
    def rate(self) -> float:
        """The current pace in requests per second (at most :attr:`max_rate`)."""
        return self._rate

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _set_rate(self, rate: float) -> None:
        self._rate = min(self.max_rate, max(self.min_rate, rate))
        self.period = 1.0 / self._rate

    async def acquire(self) -> None:
        """Wait for this caller's slot; slots are ``1 / rate`` apart, first come first served."""
        now = self._now()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self.period
        if slot > now:
            await self._sleep(slot - now)

    def throttled(self) -> None:
        """The service throttled a request: cut the rate, once per reaction window."""
        now = self._now()
        self._last_gain = now
        if now - self._last_cut < self.reaction:
            return
        self._last_cut = now
        self.cuts += 1
        self._set_rate(self._rate * self.decrease)
        # Slots already handed out at the old pace stay; new ones follow the new pace.

    def succeeded(self) -> None:
        """A request went through: win back some rate for the time since the last news."""
        now = self._now()
        if self._last_gain is not None and self._rate < self.max_rate:
            gained = self.recovery * self.max_rate * (now - self._last_gain)
            self._set_rate(self._rate + gained)
        self._last_gain = now

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        return None
