"""The emulated account's quota: a token bucket per region, shared with "production".

A :class:`Quota` is one region's bucket (``rate`` tokens per second up to ``capacity``;
``rate`` None: no quota) and the application's own calls drawing from it at
``production_tps``. Production calls are replayed lazily at their exact times (call ``k``
at ``origin + k / production_tps``) whenever the bucket is asked, so the bucket holds what
it would have held with a real caller beside the audit, on any clock, fake or real,
without a background task.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Production", "Quota", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; a request takes one or is refused."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last = now

    def take(self, now: float) -> bool:
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = max(self._last, now)
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass
class Production:
    """The production calls made so far and how many of them the quota refused."""

    calls: int = 0
    throttled: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "throttled": self.throttled}


class Quota:
    """One region's bucket and the production load on it, from emulator time ``origin``."""

    def __init__(
        self,
        rate: float | None,
        capacity: float,
        *,
        production_tps: float = 0.0,
        origin: float,
        production: Production,
    ) -> None:
        self.rate = rate
        self.bucket = None if rate is None else TokenBucket(rate, capacity, origin)
        self.production = production
        self._production_tps = production_tps
        self._origin = origin
        self._made = 0

    def advance(self, now: float) -> None:
        """Make the production calls due by ``now``, each at its own time."""
        if not self._production_tps:
            return
        while (at := self._origin + (self._made + 1) / self._production_tps) <= now:
            self._made += 1
            self.production.calls += 1
            if self.bucket is not None and not self.bucket.take(at):
                self.production.throttled += 1

    def take(self, now: float) -> bool:
        """An audit request at ``now``: True if the quota lets it through."""
        self.advance(now)
        return self.bucket is None or self.bucket.take(now)
