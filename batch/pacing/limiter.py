"""An evenly paced limiter that finds the service's quota and runs right at it.

Pacing. ``asyncio_throttle.Throttler(rate_limit=N, period=1)`` is a sliding window: it
admits N requests at once and then waits for the window to slide. Rekognition meters calls
with a token bucket whose burst is small, so a client that sends a second's worth at once
gets most of that burst throttled. The window that paces evenly is one request per
``1 / rate`` seconds, ``Throttler(rate_limit=1, period=1 / rate)``, and :class:`Limiter`
is that throttler with three changes:

- it reads time from the running loop's clock (or an injected one in tests), never
  ``time.monotonic`` behind the loop's back;
- a waiter sleeps exactly until its turn instead of polling every ``retry_interval``
  (at 50 requests/s the upstream 10 ms poll quantises a 20 ms period into 20-30 ms);
- turns are taken in arrival order (FIFO), so no worker starves, and each is timed at
  the rate of the moment, so nothing is reserved ahead at a pace that no longer holds.

Adapting. The rate starts at the configured maximum. A throttling answer means the quota
is below the current rate. The limiter cuts once per *reading*: after a cut, throttles
of requests sent before it are old news, and the next cut waits until answers to at
least eight requests sent since then are in (or a second has passed), however many
throttles arrive meanwhile. It cuts:

- back under the last estimate when the throttle comes while probing just past it (the
  quota is most likely still there); a throttle at the estimate itself means the
  estimate is a little high, and it comes down by 2%;
- otherwise to ``margin`` x its estimate of the quota: the current rate times the share
  of answers since the last cut (over at most the last second) that were not throttled,
  counted half a success up so that a handful of answers does not read low. When the
  client sends faster than the quota, that share is quota / rate, so repeated cuts
  converge on the quota instead of compounding, and a stall on the client's side (which
  lowers what it sends, not the share) does not read as a lower quota;
- by ``decrease`` when there is no such measurement yet (the first throttle of a run,
  where the bucket's initial burst would inflate it, or too few answers for a second).

After a cut the rate climbs back linearly to the estimate over ``ramp`` seconds, then
probes beyond it, barely at first and faster the longer no throttle comes (cubic in the
time since, doubling ``probe`` seconds after passing the estimate, like CUBIC), never
above the configured maximum. So a quota that drops is followed within a round trip or
two, one that comes back is found again within a few seconds, and a steady quota costs
one throttle per probe (every five seconds or so).

Without a configured rate the audit builds it with a ``start`` (5/s) and a high maximum:
it then doubles the rate every second from the start (a slow start, as TCP's) until the
first throttle, and from then on works as above.

Use it as ``await limiter.acquire()`` or ``async with limiter:``; report outcomes with
:meth:`Limiter.throttled` and :meth:`Limiter.succeeded`.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable

from asyncio_throttle.throttler import Throttler

__all__ = ["Limiter"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

_WINDOW = 1.0  # seconds of answers kept for the quota estimate
_MIN_SAMPLES = 8  # fewer answers than this is no measurement
_NEAR = 1.25  # a throttle below this multiple of the estimate is "just past it"
_AT = (0.98, 1.05)  # a throttle within these multiples is "at the estimate": too high
_SETTLE = 0.98  # ... so the estimate comes down by this factor


class Limiter(Throttler):
    """One request every ``1 / rate`` seconds; the rate follows the service's quota."""

    def __init__(
        self,
        rate: float,
        *,
        decrease: float = 0.6,
        margin: float = 0.97,
        ramp: float = 2.0,
        probe: float = 7.0,
        reaction: float = 0.0,
        start: float | None = None,
        min_rate: float | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number, got {rate!r}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {decrease!r}")
        if not 0 < margin <= 1:
            raise ValueError(f"margin must be in (0, 1], got {margin!r}")
        if not (ramp > 0 and probe > 0 and reaction >= 0):
            raise ValueError("ramp and probe must be positive and reaction not negative")
        super().__init__(rate_limit=1, period=1.0 / rate)
        self.max_rate = rate
        floor = max(0.1, min(rate, start or rate) / 100)
        self.min_rate = min(rate, min_rate if min_rate is not None else floor)
        self.decrease = decrease
        self.margin = margin
        self.ramp = ramp
        self.probe = probe
        self.reaction = reaction
        self.cuts = 0
        self._clock = clock
        self._sleep = sleep
        self._turn = asyncio.Lock()
        self._released = -math.inf
        self._cut_at = -math.inf  # when the last cut happened
        self._base = rate  # the rate right after the last cut
        self._estimate = rate  # the quota estimate the rate climbs back to
        self._measured_estimate = False  # the estimate came from a reading, not a guess
        self._answers: deque[tuple[float, bool]] = deque()
        # With a ``start`` below the maximum the limiter begins there and probes upwards,
        # as if it had just reached an estimate of ``start`` (set at the first acquire).
        self._start = start if start is not None and start < rate else None
        self._doubling_from: float | None = None

    # --- pacing -----------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _rate_at(self, now: float) -> float:
        since = now - self._cut_at
        if self._doubling_from is not None:
            return min(self.max_rate, self._base * 2 ** min(64.0, now - self._doubling_from))
        if since < self.ramp:
            rate = self._base + (self._estimate - self._base) * since / self.ramp
        else:
            beyond = (since - self.ramp) / self.probe
            rate = self._estimate * (1 + beyond**3)
        return min(self.max_rate, max(self.min_rate, rate))

    @property
    def rate(self) -> float:
        """The current pace in requests per second (at most :attr:`max_rate`)."""
        return self._start if self._start is not None else self._rate_at(self._now())

    @property
    def estimate(self) -> float:
        """The quota estimate the rate climbs back to after a cut (the maximum before)."""
        return self._estimate

    async def acquire(self) -> float:
        """Wait for this caller's turn: releases are ``1 / rate`` apart, in arrival order.

        Waiters queue on a lock (FIFO); the one at the head sleeps until one period after
        the last release, at the rate of the moment, so a rate that changes applies at
        once and waiters that wake late after a stall still leave one period apart.
        Returns the time of release: pass it back as ``sent_at`` with the answer, so the
        quota estimate counts only requests sent at the current pace.
        """
        async with self._turn:
            now = self._now()
            if self._start is not None:  # slow start: double every second until throttled
                self._base = self._estimate = self._start
                self._cut_at = self._doubling_from = now
                self._start = None
            while True:
                self.period = 1.0 / self._rate_at(now)
                due = self._released + self.period
                if due <= now:
                    break
                await self._sleep(due - now)
                now = self._now()
            # Woken a little late (timer and loop latency): keep to the schedule, so the
            # lateness does not add up; idle or stalled for longer: start from now, so
            # nothing saved up is spent in a burst.
            self._released = due if now - due < self.period / 2 else now
            return now

    # --- feedback ---------------------------------------------------------------------

    def _answer(self, now: float, sent_at: float | None, ok: bool) -> None:
        self._answers.append((now if sent_at is None else sent_at, ok))
        horizon = now - _WINDOW
        while self._answers and self._answers[0][0] < horizon:
            self._answers.popleft()

    def succeeded(self, sent_at: float | None = None) -> None:
        """A request (released at ``sent_at``) went through: counted for the estimate."""
        self._answer(self._now(), sent_at, True)

    def throttled(self, sent_at: float | None = None) -> bool:
        """The service throttled a request: cut the rate, once per reading.

        Returns whether this throttle cut the rate (the caller may log the new rate).
        """
        now = self._now()
        self._answer(now, sent_at, False)
        if sent_at is not None and sent_at < self._cut_at:
            return False  # sent before the last cut: old news
        if now - self._cut_at < self.reaction:
            return False
        current = self._rate_at(now)
        measured = self._measured(now, current)
        if measured is None:
            if now - self._cut_at < _WINDOW:
                return False  # too few answers since the last cut to read the quota: wait
            new = current * self.decrease
            self._estimate, self._measured_estimate = new, False
        elif self._measured_estimate and (
            self._estimate * _AT[0] <= current <= self._estimate * _NEAR
        ):
            # Throttled while probing just past the last estimate: the quota is still
            # about there; go back under it rather than trust a reading that still
            # counts the bucket's burst. Throttled at the estimate itself: it is high.
            if current <= self._estimate * _AT[1]:
                self._estimate *= _SETTLE
            new = min(measured, self._estimate) * self.margin
        else:
            # Never cut by more than two plain decreases on one (possibly noisy) reading.
            new = max(measured * self.margin, current * self.decrease**2)
            self._estimate = max(new, min(measured, current))
            self._measured_estimate = True
        self._base = min(current, max(self.min_rate, new))
        self._cut_at = now
        self._doubling_from = None
        self.cuts += 1
        return True

    def _measured(self, now: float, current: float) -> float | None:
        """The quota as answers to requests sent since the last cut (at most 1 s) show it."""
        if self._cut_at == -math.inf:
            return None  # the first throttle: the bucket's initial burst skews any count
        start = max(self._cut_at, now - _WINDOW)
        answers = [ok for t, ok in self._answers if t >= start]
        if len(answers) < _MIN_SAMPLES:
            return None
        # k of n answers went through: the share lies in [k/n, (k+1)/n); take the middle
        return current * min(1.0, (sum(answers) + 0.5) / len(answers))

    async def __aenter__(self) -> float:
        return await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        return None
