"""What the emulator counts: requests and outcomes, by session, region and second.

A request is counted into the :class:`Stats` of its arrival, so a reset while it is in
flight never mixes two test cases' figures. ``GET /_emulator/stats`` shows
:meth:`Stats.as_dict`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Any

from batch.emulator.quota import Production

__all__ = ["OUTCOMES", "Stats"]

OUTCOMES = (
    "ok",
    "throttled",
    "server_error",
    "dropped",
    "malformed",
    "truncated",
    "empty",
    "slow",
    "not_found",
    "invalid",
    "denied",
    "unauthenticated",
)


@dataclass
class Stats:
    """The counts since the last reset (see the module)."""

    requests: int = 0
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    by_session: Counter[str] = dataclasses.field(default_factory=Counter)
    ok_by_session: Counter[str] = dataclasses.field(default_factory=Counter)
    timeline: dict[int, list[int]] = dataclasses.field(default_factory=dict)
    by_region: dict[str, Counter[str]] = dataclasses.field(default_factory=dict)
    production: dict[str, Production] = dataclasses.field(default_factory=dict)
    quota_lookups: int = 0
    first: float | None = None
    last: float | None = None

    def count(
        self, outcome: str, now: float, session_id: str | None = None, region: str = "?"
    ) -> None:
        """One request's ``outcome`` at emulator time ``now``, asked in ``region``."""
        self.outcomes[outcome] += 1
        self.by_region.setdefault(region, Counter())[outcome] += 1
        if outcome in ("ok", "throttled"):
            row = self.timeline.setdefault(int(now), [0, 0])
            row[0 if outcome == "ok" else 1] += 1
        if outcome == "ok" and session_id is not None:
            self.ok_by_session[session_id] += 1

    def arrived(self, at: float) -> None:
        self.requests += 1
        if self.first is None:
            self.first = at
        self.last = at

    def as_dict(self) -> dict[str, Any]:
        """``requests``; ``outcomes`` (every name in OUTCOMES); per-session request and
        200-OK counts; ``timeline``: [second since reset, ok, throttled] rows;
        ``active_seconds``: from the first to the last request; ``regions``: requests and
        outcomes by the region asked; ``production``: the background calls and how many
        the quota refused, in all and ``by_region``; ``quota_lookups``: Service Quotas
        calls."""
        active = 0.0 if self.first is None or self.last is None else self.last - self.first
        production = self.production.values()
        return {
            "regions": {name: dict(counts) for name, counts in self.by_region.items()},
            "production": {
                "calls": sum(p.calls for p in production),
                "throttled": sum(p.throttled for p in production),
                "by_region": {name: p.as_dict() for name, p in self.production.items()},
            },
            "quota_lookups": self.quota_lookups,
            "requests": self.requests,
            "active_seconds": active,
            "outcomes": {name: self.outcomes[name] for name in OUTCOMES},
            "by_session": dict(self.by_session),
            "ok_by_session": dict(self.ok_by_session),
            "timeline": [[s, *counts] for s, counts in sorted(self.timeline.items())],
        }
