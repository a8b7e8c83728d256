"""The limiter's ledger of releases, read only where every answer is in.

A throttle is decided at the service's front door and answered in a round trip; a success
needs a lookup and comes back later, and answers overtake each other. So at the moment a
throttle is answered, most successes released just before it are still in flight, and a
count of "successes so far" reads the quota low, up to thirty times (issue 21). The ledger
keeps every release (its time and the rate it was released at) until it is answered, and
reads only up to the *horizon*: the oldest release still unanswered. A release unanswered
for three times the mean answer time of a success (or ``stale`` seconds, if less) is given
up on: it counts as unknown, neither success nor throttle. So a long tail of answer times
(lognormal's) holds readings back by a few mean answer times at most, and costs them the
few tail answers (under 1% at sigma 0.5).

The reading (:meth:`Ledger.bracket`): a throttled request found the bucket empty, so the
successes between two throttled releases are what the bucket refilled in between, give
or take one: ``k`` successes between throttled releases ``span`` seconds apart put the
quota left to us within ``(k +- 1) / span``, whatever the rate we sent at. It spans the
throttles of the last half second behind the horizon (over longer, a stretch under the
quota could let a small bucket overflow, and the reading would come out low).

Under 16/s half a second holds fewer than 8 successes, so no reading would ever form
there (at 5/s a lone throttle was all the limiter had). A *long* reading then reaches back
up to 10 s to the longest span with at least 8 successes during which every release went
at or above the span's top, ``(k + 1) / span``, both by the rate it was released at and
by the gap since the release before (10 ms late is on time): the bucket, empty at the
first throttle, cannot have overflowed at that pace, so the span counts what it refilled.
Under 16/s it is taken before a short one, which holds fewer.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

__all__ = ["TOLERANCE", "Bracket", "Ledger"]

_PENDING, _OK, _THROTTLED, _UNKNOWN = 0, 1, 2, 3
SPAN = 0.5  # seconds of throttled releases a bracket spans at most, but for ...
LONG = 10.0  # ... a long reading (under 16/s), which may span this many
_MIN_SPAN = 0.02  # seconds: under this, releases are too coarse a clock for the refill
TOLERANCE = 0.010  # seconds a release may lag its slot and be on schedule (the limiter's)
_MIN_BETWEEN = 4  # successes between two throttles that make a reading ...
_LONG_BETWEEN = 8  # ... and a long one (under 16/s: half a second holds fewer)


@dataclass(frozen=True)
class Bracket:
    """``between`` successes between throttled releases ``span`` seconds apart."""

    between: int
    span: float
    rate: float  # the rate the last throttled request was released at

    @property
    def long(self) -> bool:
        """Spans more than half a second: a long reading (sent at or above its top)."""
        return self.span > SPAN

    @property
    def middle(self) -> float:
        return self.between / self.span


class Ledger:
    """Releases in order: ``[time, rate, state]``, read up to the oldest unanswered one."""

    def __init__(self, stale: float = 5.0) -> None:
        self.stale = stale
        self.latency = 0.0  # the mean answer time of a success (moving, over ~20 answers)
        self._log: list[list[float]] = []  # releases from the horizon on
        self._seq = 0  # the sequence number of _log[0] (the horizon)
        # Answered throttles: (seq, time, rate, the lowest rate released since the last one).
        self._throttles: list[tuple[int, float, float, float]] = []
        self._unknown: deque[int] = deque()  # seqs given up on, behind the horizon
        self._low = math.inf  # the lowest pace since the last throttle passed (see advance)
        self._last_at = -math.inf  # the release passed before

    @property
    def unread(self) -> int:
        """Releases from the horizon on: not answered, or answered after one that is not."""
        return len(self._log)

    def took(self, seconds: float) -> None:
        """A success took ``seconds`` from release to answer."""
        seconds = max(0.0, seconds)
        self.latency += 0.05 * (seconds - self.latency) if self.latency else seconds

    def released(self, at: float, rate: float) -> None:
        """A request released at ``at`` at ``rate``; the oldest is given up on if stale
        (a caller that never reports some answers, such as errors, leaks nothing)."""
        self._log.append([at, rate, _PENDING])
        if at - self._log[0][0] > self.stale:
            self.advance(at)

    def answered(self, sent: float, ok: bool) -> float | None:
        """Record an answer; returns the rate its release was sent at (None: not found)."""
        log = self._log
        i = bisect.bisect_left(log, sent, key=lambda r: r[0])
        while i < len(log) and log[i][0] == sent and log[i][2] != _PENDING:
            i += 1
        if i == len(log) or log[i][0] != sent:
            return None  # not released here, or already answered and read
        log[i][2] = _OK if ok else _THROTTLED
        return log[i][1]

    def advance(self, now: float) -> bool:
        """Move the horizon past every answered release; True if a throttle was passed."""
        log, passed = self._log, 0
        stale = min(self.stale, 3 * self.latency) if self.latency else self.stale
        while passed < len(log):
            at, rate, state = log[passed]
            if state == _PENDING:
                if now - at < stale:
                    break
                state = _UNKNOWN
            seq = self._seq + passed
            # The pace: the rate released at, or the gap since the release before if longer
            # (callers that left the limiter idle, the gate full): in a gap a bucket refills.
            gap = at - self._last_at - TOLERANCE
            self._low = min(self._low, rate, 1 / gap if gap > 0 else math.inf)
            self._last_at = at
            if state == _THROTTLED:
                self._throttles.append((seq, at, rate, self._low))
                self._low = math.inf
            elif state == _UNKNOWN:
                self._unknown.append(seq)
            passed += 1
        if not passed:
            return False
        newest_throttle = self._throttles[-1][0] if self._throttles else -1
        del log[:passed]
        self._seq += passed
        horizon = log[0][0] if log else now
        old = bisect.bisect_left(self._throttles, horizon - 2 * LONG, key=lambda t: t[1])
        if old > len(self._throttles) // 2:  # trimmed now and then: amortised O(1)
            del self._throttles[:old]
        oldest = self._throttles[0][0] if self._throttles else self._seq
        while self._unknown and self._unknown[0] < oldest:
            self._unknown.popleft()
        return newest_throttle >= self._seq - passed

    def bracket(self) -> Bracket | None:
        """The quota between the answered throttles of the last half second, if they bracket
        enough successes (at least 4 over at least 20 ms); under 16/s, the long reading
        first, if there is one (it holds more)."""
        throttles = self._throttles
        if len(throttles) < 2:
            return None
        last_at, rate = throttles[-1][1], throttles[-1][2]
        if rate * SPAN < _LONG_BETWEEN and (reading := self._long()) is not None:
            return reading
        first = bisect.bisect_left(throttles, last_at - SPAN, key=lambda t: t[1])
        if first < len(throttles) - 1:
            reading = self._since(first)
            if reading.between >= _MIN_BETWEEN and reading.span >= _MIN_SPAN:
                return reading
        return None

    def _long(self) -> Bracket | None:
        """The longest span back (to ``LONG`` s) with at least 8 successes, sent all along
        at or above its top (so the bucket cannot have overflowed), if there is one."""
        throttles, found, low = self._throttles, None, math.inf
        last_at = throttles[-1][1]
        for first in range(len(throttles) - 2, -1, -1):
            if last_at - throttles[first][1] > LONG:
                break
            low = min(low, throttles[first + 1][3])
            reading = self._since(first)
            if reading.between >= _LONG_BETWEEN and low * reading.span >= reading.between + 1:
                found = reading
        return found

    def _since(self, first: int) -> Bracket:
        """The successes between throttle ``first`` and the last one."""
        throttles = self._throttles
        last_seq, last_at, rate, _ = throttles[-1]
        first_seq, first_at = throttles[first][0], throttles[first][1]
        throttled = len(throttles) - 1 - first - 1  # strictly between
        lost = bisect.bisect_right(self._unknown, last_seq) - bisect.bisect_right(
            self._unknown, first_seq
        )
        return Bracket(last_seq - first_seq - 1 - throttled - lost, last_at - first_at, rate)
