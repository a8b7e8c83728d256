"""Settling pending sessions: ask a ``CREATED``/``IN_PROGRESS`` session again until it ends.

A session that is still running when asked has no result yet, and its result will live
only minutes once it comes. :class:`Settler` keeps each pending session's next turn (every
``interval`` seconds, through the same pool, limiter and retry policy as every call) until
it answers ``SUCCEEDED``, ``FAILED`` or ``EXPIRED``, disappears, or ``duration`` has passed
since its first pending answer; then the last answer stands (a rerun asks again).

It also knows when the fetch phase is over: :meth:`feed` returns once nothing is queued or
in flight and no pending session is waiting for its turn (or the run is stopping). Time
comes from a :class:`~batch.pacing.clock.Clock` (the running loop's in production), so
tests run the same code on virtual time.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable

from batch.pacing.clock import LOOP, Clock, wait_for_event

__all__ = ["Settler"]

Put = Callable[[str], Awaitable[None]]


class Settler:
    """Re-asks pending sessions every ``interval`` s for at most ``duration`` s each."""

    def __init__(
        self,
        *,
        interval: float,
        duration: float,
        stopping: Callable[[], bool] = lambda: False,
        clock: Clock = LOOP,
    ) -> None:
        if interval <= 0 or duration < 0:
            raise ValueError("interval must be positive and duration not negative")
        self.interval = interval
        self.duration = duration
        self._stopping = stopping
        self._clock = clock
        self._due: list[tuple[float, int, str]] = []  # (when, tie-break, session) heap
        self._first: dict[str, float] = {}  # first pending answer of each waiting session
        self._busy = 0  # sessions put into the pool and not yet answered
        self._order = 0
        self._changed = asyncio.Event()

    def _now(self) -> float:
        return self._clock.now()

    @property
    def waiting(self) -> int:
        """Pending sessions waiting for their next turn (or in it)."""
        return len(self._first)

    def sent(self) -> None:
        """A session was put into the pool."""
        self._busy += 1

    def answered(self, session_id: str, *, pending: bool) -> bool:
        """A session's turn ended; returns whether it will be asked again.

        ``pending``: it answered ``CREATED`` or ``IN_PROGRESS``.
        """
        self._busy -= 1
        again = False
        if pending and self.duration > 0:
            now = self._now()
            first = self._first.setdefault(session_id, now)
            if now + self.interval <= first + self.duration:
                heapq.heappush(self._due, (now + self.interval, self._order, session_id))
                self._order += 1
                again = True
        if not again:
            self._first.pop(session_id, None)
        self._changed.set()
        return again

    async def feed(self, put: Put) -> None:
        """Put each waiting session back when its turn comes; return when all is done."""
        while not self._stopping():
            now = self._now()
            if self._due and self._due[0][0] <= now:
                _, _, session_id = heapq.heappop(self._due)
                self.sent()
                await put(session_id)
                continue
            if not self._due and self._busy <= 0:
                return
            self._changed.clear()
            # until an answer arrives or the next turn is due, whichever comes first
            delay = self._due[0][0] - now if self._due else None
            await wait_for_event(self._clock, self._changed, delay)

    def wake(self) -> None:
        """Make :meth:`feed` look again (the run is stopping)."""
        self._changed.set()

    def abandon(self) -> list[str]:
        """Stop settling: the sessions still waiting for a turn (their last answer stands)."""
        left = sorted(self._first)
        self._due.clear()
        self._first.clear()
        return left
