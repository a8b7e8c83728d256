"""How long the service takes to answer: one model for the emulator, the simulator and tests.

A request travels to the service (half a round trip), is let in or throttled by the quota
on arrival, is looked up if let in (the processing time), and travels back (the other
half). A throttle is decided at the front door, so it costs the round trip only; with
``throttle="success"`` it is answered as slowly as a success (processing time drawn too).
Every part is drawn on its own from the same shape around its median:

- ``fixed``: the median itself;
- ``uniform``: within ``+- jitter`` of the median (``jitter`` a share, 0.4 for +-40%);
- ``lognormal``: ``median x exp(N(0, jitter))`` (``jitter`` is sigma: a long tail).

So requests may overtake each other, on the way in and on the way back. ``latency`` is the
median answer time of a success; ``round_trip`` (default: all of it) is the network's
part of it, the rest is processing. The old emulator's fixed ``latency`` is
``Timing(latency)``: everything network, fixed, throttles as slow as successes.

Spec form (``--timing``): comma-separated ``key=value`` with keys ``latency``,
``round_trip``, ``dist``, ``jitter``, ``throttle`` (seconds for times), e.g.
``latency=0.05,round_trip=0.005,dist=lognormal,jitter=0.5``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["DISTS", "THROTTLES", "Leg", "Timing", "parse_timing"]

Dist = Literal["fixed", "uniform", "lognormal"]
Throttle = Literal["round-trip", "success"]
DISTS: tuple[str, ...] = get_args(Dist)
THROTTLES: tuple[str, ...] = get_args(Throttle)


@dataclass(frozen=True)
class Leg:
    """When a request reaches the quota, and how long after that its answer comes back."""

    way_in: float  # seconds from sending to the quota's decision
    back: float  # seconds from the decision to the answer, if let in
    back_throttled: float  # ... if throttled


@dataclass(frozen=True, kw_only=True)
class Timing:
    """The service's timing: median answer ``latency`` split into network and processing."""

    latency: float = 0.0
    round_trip: float | None = None  # None: the whole latency (no processing time)
    dist: Dist = "fixed"
    jitter: float = 0.0
    throttle: Throttle = "round-trip"

    def __post_init__(self) -> None:
        for name in ("latency", "jitter"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.round_trip is not None and not 0 <= self.round_trip <= self.latency:
            raise ValueError(f"round_trip must be within [0, latency], got {self.round_trip!r}")
        if self.dist not in DISTS:
            raise ValueError(f"dist must be one of {', '.join(DISTS)}, got {self.dist!r}")
        if self.dist == "uniform" and self.jitter > 1:
            raise ValueError(f"a uniform jitter is a share in [0, 1], got {self.jitter!r}")
        if self.throttle not in THROTTLES:
            raise ValueError(f"throttle must be one of {', '.join(THROTTLES)}")

    @property
    def network(self) -> float:
        """The median round trip (both ways)."""
        return self.latency if self.round_trip is None else self.round_trip

    @property
    def processing(self) -> float:
        """The median processing time of a success."""
        return self.latency - self.network

    def draw(self, median: float, rng: random.Random) -> float:
        """One draw of a part whose median is ``median``."""
        if median <= 0 or self.dist == "fixed" or self.jitter == 0:
            return median
        if self.dist == "uniform":
            return median * (1 + rng.uniform(-self.jitter, self.jitter))
        return median * math.exp(rng.gauss(0.0, self.jitter))

    def leg(self, rng: random.Random) -> Leg:
        """The timings of one request, drawn from ``rng``."""
        half = self.network / 2
        way_in, way_back = self.draw(half, rng), self.draw(half, rng)
        processed = way_back + self.draw(self.processing, rng)
        return Leg(way_in, processed, processed if self.throttle == "success" else way_back)


def parse_timing(spec: str) -> Timing:
    """A :class:`Timing` from ``key=value,...`` (ValueError naming what is wrong)."""
    fields = {f.name for f in dataclasses.fields(Timing)}
    values: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise ValueError(f"timing: expected key=value with a key in {sorted(fields)}: {part!r}")
        if key in ("dist", "throttle"):
            values[key] = value.strip()
            continue
        try:
            values[key] = float(value)
        except ValueError:
            raise ValueError(f"timing: {key} must be a number of seconds, got {value!r}") from None
    return Timing(**values)  # type: ignore[arg-type]  # checked in __post_init__
