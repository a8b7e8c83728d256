"""The emulator's quota and timing on virtual time: for the simulator and the limiter's tests.

A :class:`VirtualService` is a clock, a ``sleep`` that moves it, and a token bucket behind
a :class:`~batch.emulator.timing.Timing`: :meth:`send` starts a request at the current
time; it reaches the bucket ``way_in`` later (in arrival order, so requests may overtake
each other), and its answer is handed to the listener's ``succeeded(sent_at)`` or
``throttled(sent_at)`` when due, while someone sleeps. Nothing waits for real, so a
minute of traffic at 1,000/s runs in seconds, and a seed makes it repeatable.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from batch.emulator.quota import TokenBucket
from batch.emulator.timing import Timing

__all__ = ["Client", "Listener", "Send", "ServiceClock", "VirtualService"]


class Listener(Protocol):
    """Who hears the answers (a :class:`batch.pacing.limiter.Limiter`)."""

    def succeeded(self, sent_at: float | None = None) -> object: ...

    def throttled(self, sent_at: float | None = None) -> object: ...


class Client(Listener, Protocol):
    """A listener that also paces the sends (a :class:`batch.pacing.limiter.Limiter`)."""

    async def acquire(self) -> float: ...


@dataclass
class Send:
    """One request: when it was sent, and (once it reached the bucket) whether it went in."""

    at: float
    back: float = 0.0  # seconds from the bucket to the answer if let in
    back_throttled: float = 0.0  # ... if throttled
    ok: bool | None = None


@dataclass
class VirtualService:
    """A token bucket of ``quota``/s holding ``burst``, answering after ``timing``."""

    quota: float
    burst: float
    timing: Timing
    seed: int = 21
    jitter: float = 0.0  # seconds a sleeper may wake late (a busy loop), uniform
    quota_at: Callable[[float], float] | None = None  # the quota at a time, if it changes
    listener: Listener | None = None
    now: float = 0.0
    sends: list[Send] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311  # a seeded model, not a secret
        self._bucket = TokenBucket(self.quota, self.burst, 0.0)
        self._events: list[tuple[float, int, Send, bool]] = []  # (due, n, send, arrival?)
        self._n = itertools.count()

    @property
    def clock(self) -> ServiceClock:
        """This service's time as a :class:`batch.pacing.clock.Clock` (for the limiter)."""
        return ServiceClock(self)

    async def sleep(self, seconds: float) -> None:
        """Move time on by ``seconds`` (and a little late), delivering what falls due."""
        late = self._rng.uniform(0, self.jitter) if self.jitter else 0.0
        self.advance(self.now + seconds + late)

    def send(self) -> None:
        """A request leaves now."""
        leg = self.timing.leg(self._rng)
        sent = Send(self.now, leg.back, leg.back_throttled)
        self.sends.append(sent)
        heapq.heappush(self._events, (self.now + leg.way_in, next(self._n), sent, True))

    def advance(self, until: float) -> None:
        """Let every arrival and answer due by ``until`` happen, in time order."""
        while self._events and self._events[0][0] <= until:
            due, _, sent, arrival = heapq.heappop(self._events)
            self.now = max(self.now, due)
            if arrival:
                self._arrive(due, sent)
            elif self.listener is not None:
                (self.listener.succeeded if sent.ok else self.listener.throttled)(sent.at)
        self.now = max(self.now, until)

    def _arrive(self, at: float, sent: Send) -> None:
        if self.quota_at is not None:
            self._bucket.rate = self.quota_at(at)
        sent.ok = self._bucket.take(at)
        answer = at + (sent.back if sent.ok else sent.back_throttled)
        heapq.heappush(self._events, (answer, next(self._n), sent, False))

    async def run(self, client: Client, seconds: float, *, listen: bool = True) -> None:
        """Send as fast as ``client`` lets us until ``seconds`` (it hears the answers, unless
        ``listen`` is False: a client at a fixed rate)."""
        self.listener = client if listen else None
        while self.now < seconds:
            await client.acquire()
            self.send()

    def through(self, start: float, end: float) -> int:
        """Requests sent in ``[start, end)`` that went through."""
        return sum(1 for s in self.sends if s.ok and start <= s.at < end)

    def throttled(self) -> int:
        return sum(1 for s in self.sends if s.ok is False)


@dataclass(frozen=True)
class ServiceClock:
    """A :class:`VirtualService`'s time, read and slept on (sleeping delivers what is due)."""

    service: VirtualService

    def now(self) -> float:
        return self.service.now

    async def sleep(self, seconds: float) -> None:
        await self.service.sleep(seconds)
