"""Plain fake parts that unit tests pass in instead of the real ones."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any


class FakeLimiter:
    """Hands out numbered turns and writes down what it is told."""

    def __init__(self, *, cuts: bool = True) -> None:
        self.turns = 0
        self.throttles: list[float | None] = []
        self.successes: list[float | None] = []
        self._cuts = cuts

    async def __aenter__(self) -> float:
        self.turns += 1
        return float(self.turns)

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def throttled(self, sent_at: float | None = None) -> bool:
        self.throttles.append(sent_at)
        return self._cuts

    def succeeded(self, sent_at: float | None = None) -> None:
        self.successes.append(sent_at)


class VirtualClock:
    """The one virtual clock of the tests: a :class:`batch.pacing.clock.Clock` on which
    time passes only when the test says so or when nothing else can happen.

    Modelled on trio's ``MockClock``: time stands still while any task of the loop can run.
    It moves by :meth:`advance` (or by setting :attr:`time`), and, with ``autojump`` (the
    default), on its own once every task is waiting: straight to the earliest deadline (a
    :meth:`sleep` or a :meth:`call_at`), whose sleepers wake and callbacks run at that
    time. So a minute of pacing runs in milliseconds, in the order real time would give.

    ``sleeps`` lists every wait asked for (seconds), for tests of a schedule.
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = True) -> None:
        self._now = start
        self.autojump = autojump
        self.sleeps: list[float] = []
        self._order = itertools.count()
        # (deadline, order, a sleeper's future or a callback)
        self._due: list[tuple[float, int, asyncio.Future[None] | Callable[[], object]]] = []
        self._jumper: asyncio.Task[None] | None = None

    # --- the Clock protocol ----------------------------------------------------------

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time (a checkpoint even for zero)."""
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._push(self._now + seconds, future)
        if self.autojump:
            # Every other task already waits: jump now rather than in the jumper's turn
            # (what is due first fires; the same result, in a fraction of the loop turns).
            while not future.done() and not _runnable(loop):
                self._fire_next()
            if not future.done():
                self._start_jumping()
        await future

    # --- moving time -----------------------------------------------------------------

    @property
    def time(self) -> float:
        """The time now; setting it moves time there (never back) as :meth:`advance` does."""
        return self._now

    @time.setter
    def time(self, when: float) -> None:
        self.advance(when - self._now)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``: every deadline passed fires, in order, at its time."""
        if seconds < 0 or math.isnan(seconds):
            raise ValueError(f"time only moves forward, not by {seconds!r}")
        until = self._now + seconds
        while self._due and self._due[0][0] <= until:
            self._fire_next()
        self._now = until

    def call_at(self, when: float, callback: Callable[[], object]) -> None:
        """Run ``callback`` (a plain function) when time reaches ``when``."""
        self._push(max(when, self._now), callback)

    def _push(self, when: float, what: asyncio.Future[None] | Callable[[], object]) -> None:
        heapq.heappush(self._due, (when, next(self._order), what))

    def _fire_next(self) -> None:
        when, _, what = heapq.heappop(self._due)
        if isinstance(what, asyncio.Future):
            if what.done():  # cancelled while asleep: not a reason to move time
                return
            self._now = max(self._now, when)
            what.set_result(None)
        else:
            self._now = max(self._now, when)
            what()

    # --- autojump --------------------------------------------------------------------

    def _start_jumping(self) -> None:
        if self.autojump and (self._jumper is None or self._jumper.done()):
            self._jumper = asyncio.get_running_loop().create_task(self._jump())

    async def _jump(self) -> None:
        """While anyone sleeps: once every task waits, move time to the next deadline."""
        loop = asyncio.get_running_loop()
        while self._due:
            await asyncio.sleep(0)
            if _runnable(loop):
                continue
            when = self._due[0][0]
            while self._due and self._due[0][0] <= when:
                self._fire_next()


def _runnable(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether a callback is ready to run (some task can go on): asyncio keeps them in
    ``_ready`` (CPython 3.11 to 3.13), the only way to tell that every task waits."""
    ready: Any = loop._ready  # type: ignore[attr-defined]  # asyncio's run queue
    return bool(ready)
