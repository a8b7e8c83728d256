"""The one clock the pacing parts read and sleep on.

The limiter, the gate, the retry policy, the settler and ``follow``'s capture read the
time and wait; each takes a :class:`Clock` so that one object decides what time is. In
production that is :data:`LOOP`, the running event loop's monotonic clock (what
``asyncio.sleep`` and ``asyncio.timeout`` use). Tests pass a virtual clock
(``tests/fakes.py``), on which minutes pass in no real time, and the code under test runs
unchanged: no test-only branch in production code.

``now()`` is seconds on a monotonic scale with an arbitrary origin, not the calendar
(``follow`` names its days from its own wall-clock ``now``).
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

__all__ = ["LOOP", "Clock", "LoopClock", "wait_for_event"]


class Clock(Protocol):
    """Monotonic seconds, and a wait of that many seconds on the same scale."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


LOOP: Final[Clock] = LoopClock()


async def wait_for_event(clock: Clock, event: asyncio.Event, delay: float | None) -> bool:
    """Wait until ``event`` is set or ``delay`` seconds have passed on ``clock``
    (``None``: no limit); whether the event is set.

    ``asyncio.timeout`` would read the loop's clock whatever ``clock`` is, so the wait
    races the event against ``clock.sleep``.
    """
    if event.is_set() or delay is None:
        await event.wait()
        return True
    waiter = asyncio.ensure_future(event.wait())
    timer = asyncio.ensure_future(clock.sleep(delay))
    try:
        await asyncio.wait((waiter, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        timer.cancel()
        await asyncio.gather(waiter, timer, return_exceptions=True)
    return event.is_set()
