"""An evenly paced limiter that finds the service's quota and runs right at it.

Pacing. One request every ``1 / rate`` seconds, in arrival order, on the loop's clock.
A late release keeps to the schedule if it is at most 10 ms behind (GCRA's tolerance: a
busy 2-core loop's latency; the burst it allows, ``1 + rate x 10 ms``, is a twentieth of
a bucket of ``Q / 5``); lateness or idle time beyond that is not saved up, nor is a wait
begun at a lower rate (behind a bucket of one token, that cost a throttle).

Finding the quota. Without a configured rate (``start`` given) the rate slow-starts:
it grows at each answer by what one answer time (the mean of successes) allows, so only
while answers come: doubling per answer time under 50/s, by ``growth`` above, where a
bucket's burst hides the quota, and at least eight-fold a second (at 150 ms, 1.37 per
answer time: 0.9 x 500/s within 2 s), at most 32-fold (at 5 ms, ``growth`` per answer
time ran twenty times past a quota of 150 before the bucket's first refusal came back).

Reading it (issue 21). A throttle is answered in a round trip, a success after a lookup,
so the quota is read only from spans whose answers are all in (:mod:`batch.pacing.
answered`): ``k`` successes between throttled releases ``span`` apart put the quota left
to us at ``(k +- 1) / span``. A reading narrow to ``1 - margin`` (or, under 16/s, a long
one of 20 successes: nothing narrower forms there) sets the estimate, and the rate to
``margin`` x it, down or up; a wide one lowers the rate to its top.

Cutting. Until a reading is in, a throttle cuts blind: by ``decrease`` the first time,
then searches back up halfway to the throttled rate every three clean answers; when
running, a lone throttle puts the estimate 2% under the rate. Throttles of requests
released before the last cut are old news, and no cut goes below ``decrease`` x the
rate. After a cut the rate climbs back over ``ramp`` seconds to the estimate (after a
reading's cut, on to the best reading of the last ten seconds), then probes beyond it,
cubic in time as CUBIC: slowly (doubling over 2,000 answers or ``probe`` s, at most
400 s), and at ``probe``'s pace once 5% past the estimate cleanly (the quota has risen).

Sharing. ``cap`` (the account's quota x this run's share) is never exceeded nor probed
past; a throttle at or below it means the application is busy: the rate backs off to at
most ``decrease`` x itself for ``hold`` seconds (:attr:`Limiter.holding`).

Use ``await limiter.acquire()`` or ``async with limiter as sent_at:``, and report answers
with :meth:`Limiter.throttled` and :meth:`Limiter.succeeded`. Every time read goes
through :meth:`Limiter._now`. (asyncio-throttle polls every 10 ms, which caps it near
100/s, and cannot run on a virtual clock: docs/BENCHMARKS.md, "Limiter simulation".)
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from batch.pacing.answered import TOLERANCE, Ledger
from batch.pacing.clock import LOOP, Clock

__all__ = ["Limiter", "Pace"]

Phase = Literal["start", "search", "steady"]

_RECHECK = 0.05  # a waiter looks again this often, so a rate that went up applies
_CLEAN = 3  # answers, none throttled, that let a search step up
_SETTLE = 0.98  # a lone throttle: the quota is taken to be this much under the rate
_JITTER = 0.002  # seconds a request may take to reach the service, unevenly, after release
_PROBE_ANSWERS = 2000  # a probe takes at least this many answers to double the rate ...
_PROBE_MAX = 400.0  # ... or this many seconds, if fewer (2,000 answers at 5/s)
_LONG_NARROW = 20  # successes that make a long reading (under 16/s) narrow: +-1 is 5%
_DOUBLE_BELOW = 50.0  # the slow start doubles under this rate, then grows by `growth`
_AT_LEAST = 8.0  # ... per answer time, and at least this much a second (long latencies)
_AT_MOST = 32.0  # ... and, above `_DOUBLE_BELOW`, at most this much a second (short ones)
_MEMORY = 10.0  # seconds a measured estimate is climbed back to after a reading's cut
_KNEE = 0.05  # that far past the estimate, the quota has risen: on at `probe`'s pace


def _check(
    rate: float, cap: float | None, *, decrease: float, margin: float, growth: float
) -> None:
    """Refuse nonsense with a message that names the argument."""
    for name, value in (("rate", rate), ("cap", rate if cap is None else cap)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not 0 < decrease < 1:
        raise ValueError(f"decrease must be between 0 and 1, got {decrease!r}")
    if not 0 < margin <= 1:
        raise ValueError(f"margin must be in (0, 1], got {margin!r}")
    if not growth > 1:
        raise ValueError(f"growth must be above 1, got {growth!r}")


@dataclass(frozen=True)
class Pace:
    """What the limiter is doing, for the run's log and summary."""

    rate: float  # requests per second now
    estimate: float  # the quota estimate the rate climbs back to
    cap: float | None  # the ceiling (quota x share), if one was given
    holding: bool  # backed off for the application, not climbing yet
    cuts: int


class Limiter:
    """One request every ``1 / rate`` seconds; the rate follows the service's quota."""

    def __init__(
        self,
        rate: float,
        *,
        decrease: float = 0.6,
        margin: float = 0.98,
        ramp: float = 2.0,
        probe: float = 7.0,
        reaction: float = 0.0,
        growth: float = 1.2,
        start: float | None = None,
        min_rate: float | None = None,
        cap: float | None = None,
        hold: float = 120.0,
        clock: Clock = LOOP,
    ) -> None:
        _check(rate, cap, decrease=decrease, margin=margin, growth=growth)
        if not (ramp > 0 and probe > 0 and reaction >= 0 and hold >= 0):
            raise ValueError("ramp and probe must be positive, reaction and hold not negative")
        self.cap = cap
        self.max_rate = min(rate, cap) if cap is not None else rate
        first = min(self.max_rate, start) if start is not None else self.max_rate
        self.min_rate = min(first, min_rate if min_rate is not None else max(0.1, first / 100))
        self.decrease, self.margin, self.ramp, self.probe = decrease, margin, ramp, probe
        self.reaction, self.hold, self.growth = reaction, hold, growth
        self.cuts = 0
        self._clock = clock
        self._turn = asyncio.Lock()
        self._slot = -math.inf  # the schedule: the last slot released
        self._phase: Phase = "start" if first < self.max_rate else "steady"
        self._base = first  # the rate right after the last cut or step
        self._estimate = first  # the quota estimate the rate climbs back to
        self._cut_at = -math.inf  # when the last cut happened
        self._hold_until = -math.inf  # no climbing before this (the application is busy)
        self._step_at = -math.inf  # when slow start or search last changed the rate
        self._grown_at = -math.inf  # when the slow start last grew
        self._spoiled_at = -math.inf  # the send time of the throttle that spoiled a reading
        self._above = self.max_rate  # search: the rate that was throttled
        self._stepped = False  # search: stepped up since the last blind cut
        self._clean: float = 0  # answers sent since the step, -inf once one is throttled
        self._ledger = Ledger()  # releases, read where every answer is in
        self._before = 0.0  # the estimate before the cuts since, climbed back to after
        self._way = 0.0  # seconds a request takes to reach the service (half a throttle's)
        self._peaks: deque[tuple[float, float]] = deque()  # measured estimates, by time

    # --- pacing -----------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now()

    def _rate_at(self, now: float) -> float:
        if self._phase != "steady" or now < self._hold_until:
            return self._base
        since = now - max(self._cut_at, self._hold_until)
        if since < self.ramp:
            rate = self._base + (self._estimate - self._base) * since / self.ramp
        elif self._before > self._estimate:  # then back up to the estimate before the cut
            if since < 2 * self.ramp:
                rate = self._estimate + (self._before - self._estimate) * (since / self.ramp - 1)
                return min(self.max_rate, max(self.min_rate, rate))
            # There cleanly: that estimate holds again, and the probe goes on from it.
            self._estimate, self._before = self._before, 0.0
            self._cut_at = max(self._cut_at, self._hold_until) + self.ramp
            rate = self._probing(since - 2 * self.ramp)
        else:
            rate = self._probing(since - self.ramp)
        return min(self.max_rate, max(self.min_rate, rate))

    def _probing(self, seconds: float) -> float:
        """The rate ``seconds`` into a probe: slow near the estimate, fast once well past."""
        slow = self._probe_span()
        knee = slow * math.cbrt(_KNEE)  # when the slow curve is _KNEE past the estimate
        if seconds <= knee:
            return self._estimate * (1 + (seconds / slow) ** 3)
        return self._estimate * (1 + _KNEE) * (1 + ((seconds - knee) / self.probe) ** 3)

    def _probe_span(self) -> float:
        """Seconds a probe takes to double: ``probe``, or 2,000 answers' worth (<= 400 s)."""
        return max(self.probe, min(_PROBE_ANSWERS / self._estimate, _PROBE_MAX))

    @property
    def rate(self) -> float:
        """The current pace in requests per second (at most :attr:`max_rate`)."""
        return self._rate_at(self._now())

    @property
    def estimate(self) -> float:
        """The quota estimate the rate climbs back to after a cut (the maximum before)."""
        return self._estimate

    @property
    def holding(self) -> bool:
        """Backed off after a throttle at or below the cap, and not climbing yet."""
        return self._now() < self._hold_until

    def pace(self) -> Pace:
        """Rate, estimate, cap and whether it is holding back, read together."""
        return Pace(self.rate, self._estimate, self.cap, self.holding, self.cuts)

    async def acquire(self) -> float:
        """Wait for this caller's turn: slots are ``1 / rate`` apart, in arrival order.

        Waiters queue on a lock (FIFO); the one at the head sleeps until one period after
        the last slot, at the rate of the moment. Woken late (past the time it slept to), or
        let in past its slot, it takes its slot on the schedule if that is at most the
        tolerance (10 ms) behind the clock (the next waiters then go at once until the
        schedule has caught up), else the slot 10 ms back.
        Returns the time of release: pass it back as ``sent_at`` with the answer.
        """
        async with self._turn:
            now, woke = self._now(), -math.inf
            while True:
                period = 1.0 / self._rate_at(now)
                due = self._slot + period
                if due <= now:
                    break
                woke = now + min(due - now, _RECHECK)
                await self._clock.sleep(woke - now)
                now = self._now()
            # Caught up: how late the loop woke this waiter, not a sleep it chose at a lower
            # rate (raised meanwhile, the slot after came up to 10 ms sooner: two requests
            # within one token's time, which a bucket of one refuses).
            late = max(0.0, now - woke)  # (a timer may fire a little early)
            if self._slot == -math.inf:
                self._slot = now
            else:
                self._slot = max(due, now - min(late, TOLERANCE))
            self._ledger.released(now, 1.0 / period)
            return now

    async def __aenter__(self) -> float:
        return await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    # --- feedback ---------------------------------------------------------------------

    def succeeded(self, sent_at: float | None = None) -> None:
        """A request (released at ``sent_at``) went through: counted, and may step up."""
        now = self._now()
        sent = now if sent_at is None else sent_at
        self._ledger.answered(sent, True)
        self._ledger.took(now - sent)
        if self._ledger.advance(now):
            self._reading(now)
        if self._phase == "steady" or sent < self._step_at or now < self._hold_until:
            return
        if self._clean == -math.inf:  # a throttle spoiled this step's reading
            if sent < self._spoiled_at + max(1.0, 8 / self._base):
                return
            # A second of answers since, and not one throttled: a cut that waited for a
            # reading is not coming (the bucket had only been empty): read afresh.
            self._step_at, self._clean = sent, 0
        if self._phase == "start":
            self._grow(now)
            return
        self._clean += 1
        if self._clean >= _CLEAN:  # a clean reading: halfway to the throttled rate
            self._step(now, min(self._base * 2, (self._base + self._above) / 2))
            self._stepped = True
            if self._base >= self._above * self.margin:  # bracketed: run as after a cut
                self._phase, self._estimate, self._cut_at = "steady", self._base, now

    def _grow(self, now: float) -> None:
        """Slow start: the rate grows by ``_growth()`` per answer time (the ledger's mean),
        in steps at each answer, so it grows only while answers come (at most one whole
        step's growth per answer)."""
        latency = self._ledger.latency
        since = min(1.0, (now - self._grown_at) / latency) if latency > 0 else 1.0
        per_answer_time = max(self._growth(), _AT_LEAST**latency)
        factor = per_answer_time**since
        if self._base >= _DOUBLE_BELOW:  # answers in 5 ms would grow it 38-fold in 0.1 s
            factor = min(factor, _AT_MOST ** (now - self._grown_at))
        self._base = min(self.max_rate, self._base * factor)
        self._grown_at = now

    def _growth(self) -> float:
        """A slow start's step: double under 50/s (a step's round trip there is mostly the
        wait for the next send, and an overshoot a few requests), ``growth`` above."""
        return 2.0 if self._base < _DOUBLE_BELOW else self.growth

    def _step(self, now: float, rate: float) -> None:
        self._base = rate
        self._step_at, self._clean = now, 0

    def throttled(self, sent_at: float | None = None) -> bool:
        """The service throttled a request: read the quota, and cut the rate if it is above.

        Returns whether this throttle changed the rate (the caller may log the new rate).
        """
        now = self._now()
        sent = now if sent_at is None else sent_at
        released_at = self._ledger.answered(sent, False)
        if sent >= self._step_at:
            self._clean = -math.inf  # this step's reading is not clean
            self._spoiled_at = sent
        changed = self._ledger.advance(now) and self._reading(now)
        self._way += 0.2 * ((now - sent) / 2 - self._way)  # a throttle's way in, about
        if sent < self._cut_at + self._way or now - self._cut_at < self.reaction:
            return changed  # sent before the last cut (old news), or too soon to react
        current = self._rate_at(now)
        if released_at is not None and released_at > self._estimate:  # a climb failed here
            self._before = min(self._before, released_at * _SETTLE)
        if self._phase == "start":  # the slow start overshot: back to below that rate
            new = self._blind(released_at if released_at is not None else self._base)
        else:
            new = self._cut(current)
        self._set(now, current, new, 0.0)
        return True

    def _set(
        self, now: float, current: float, new: float, before: float, *, own: bool = True
    ) -> None:
        """Cut (or lift) the rate to ``new``, never below ``decrease`` x ``current``; a
        throttle at or below the cap (``own``: of a release since the last cut) holds.
        ``before``: the measured estimate before this, to climb back to (0: none)."""
        new = max(new, current * self.decrease)
        if before > self._estimate:
            self._before = max(self._before, before)
        if own and self.cap is not None and current <= self.cap:
            new = min(new, current * self.decrease)  # the application is busy
            self._hold_until = now + self.hold
        self._base = min(self.max_rate, max(self.min_rate, new))
        self._cut_at, self._step_at, self._clean = now, now, 0
        self.cuts += 1

    def _reading(self, now: float) -> bool:
        """Go by the answered throttles' bracket of the quota, if there is one; True if
        that changed the rate.

        Narrow (one answer more or less within ``1 - margin``, or a long reading of 20
        successes, sent at or above its top all along): the estimate is its middle,
        and the rate ``margin`` x that, down from above the middle or up from a blind cut.
        Wide: the rate goes down to its top, which is at or above the quota (the few
        throttles that costs narrow it); after a blind cut, up to ``margin`` x its middle.
        """
        reading = self._ledger.bracket()
        if reading is None:
            return False
        before = self._peak(now)
        middle = reading.middle
        top = (reading.between + 1) / max(reading.span - _JITTER, reading.span / 2)
        current = self._rate_at(now)
        # Requests reach the service unevenly (``_way`` each, about), so the throttles at
        # either end may be a few requests off: a blind cut's search takes a reading that
        # is wider than that, and the rest of the time one narrow to ``1 - margin``.
        blind = self._phase != "steady" and reading.between >= 4 * reading.rate * self._way
        narrow = reading.between * (1 - self.margin) >= 2 or (
            reading.long and reading.between >= _LONG_NARROW
        )
        if narrow or blind:
            # A wide reading after a blind cut is taken at its top: its middle may be a
            # fifth under the quota, and the slow probe would take a minute to find that.
            middle = middle if narrow else top
            lift = self._phase != "steady"  # after a blind cut: up to under the middle
            self._phase, self._estimate = "steady", middle
            self._measured(now)
            if current > middle or (lift and current < middle * self.margin):
                self._set(now, current, middle * self.margin, before, own=False)
                return True
            return False
        if current > top:
            self._phase = "steady"
            self._estimate = top
            self._set(now, current, top, before, own=False)
            return True
        return False

    def _peak(self, now: float) -> float:
        """The highest narrow reading of the last ten seconds (0: none)."""
        while self._peaks and self._peaks[0][0] < now - _MEMORY:
            self._peaks.popleft()
        return max((e for _, e in self._peaks), default=0.0)

    def _measured(self, now: float) -> None:
        """The estimate is a measurement: remembered for a while, to climb back to."""
        self._peaks.append((now, self._estimate))

    def _blind(self, throttled_at: float) -> float:
        """No reading yet: cut by ``decrease`` and search up towards the throttled rate."""
        new = throttled_at * self.decrease
        if self._phase != "search" or self._stepped:  # a cascade right after a blind cut
            self._above = throttled_at  # (the bucket still empty) is no news of the quota
        self._phase, self._stepped, self._estimate = "search", False, new
        return new

    def _cut(self, current: float) -> float:
        """The rate after a lone throttle while running: the quota is just under ``current``.

        A lone throttle (no second one to bracket the quota with) came when the rate had
        just passed the quota: the estimate goes to just under that rate, and the rate to
        ``margin`` x the estimate. In a search (after a blind cut, no reading yet) the cut
        was not enough: cut blind again.
        """
        if self._cut_at == -math.inf or self._phase == "search":  # no reading yet
            return self._blind(current)
        if current > self._estimate:
            # Probing past the estimate: the quota is between the two (the bucket's burst
            # may have hidden it for a while, so not right under the rate): halfway.
            self._estimate = min(current * _SETTLE, (self._estimate + current) / 2)
        else:
            self._estimate = current * _SETTLE
        return self._estimate * self.margin
