"""The emulated account's settings: its quota, timing, life of sessions and faults.

Frozen and validated at construction (a bad value is a ``ValueError`` naming it); a
running emulator changes them with ``configure`` (all but :data:`FIXED`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from batch.emulator.timing import Timing

__all__ = ["ANY_REGION", "FIXED", "RATES", "EmulatorSettings"]

RATES = ("error_rate", "drop_rate", "malformed_rate", "truncated_rate", "empty_rate", "slow_rate")
FIXED = ("sessions", "seed")  # what a running emulator cannot change
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
ANY_REGION = "*"  # the one bucket of an emulator without regions


@dataclass(frozen=True, kw_only=True)
class EmulatorSettings:
    """The emulated account's quota and the faults to inject."""

    sessions: int = 1000
    seed: int = 0
    tps: float | None = None
    burst: float | None = None
    throttle_error: Literal[
        "ThrottlingException", "ProvisionedThroughputExceededException", "mixed"
    ] = "ThrottlingException"
    latency: float = 0.0
    latency_jitter: float = 0.0
    # The service's timing (batch.emulator.timing): the way in before the quota decides,
    # the way back after, processing for successes. Set, it replaces latency(_jitter).
    timing: Timing | None = None
    error_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    truncated_rate: float = 0.0
    empty_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 60.0
    expire_after: float | None = None
    deny_all: bool = False
    # The version IDs the evidence bucket gave the stored images, by object key: a real
    # service reports the version S3 assigned when it wrote the image. Unset: synthetic.
    evidence_versions: dict[str, str] | None = None
    # Time passes (batch.emulator.lifecycle): sessions live this many seconds. None: the
    # timeless emulator, every population session answers its fixed status.
    lifetime: float | None = None
    expire_unfinished: float | None = None  # unfinished sessions EXPIRED after [lifetime/2]
    new_per_second: float = 0.0  # sessions created per second while it runs
    new_start_after: float | None = 5.0  # ... each started this long after creation
    new_finish_after: float | None = 10.0  # ... and finished this long after creation
    background_tps: float = 0.0  # production calls per second on each region's bucket
    # The regions sessions live in (each in one); None: any region answers every session.
    regions: tuple[str, ...] | None = None
    region_tps: dict[str, float] | None = None  # a region's own quota instead of ``tps``

    def __post_init__(self) -> None:
        if self.sessions < 0:
            raise ValueError(f"sessions must not be negative, got {self.sessions!r}")
        for name in ("tps", "burst"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.regions is not None:  # JSON gives a list: keep the frozen settings hashable
            object.__setattr__(self, "regions", tuple(self.regions))
        if isinstance(self.timing, dict):  # JSON gives an object
            object.__setattr__(self, "timing", Timing(**self.timing))
        self._check_time_and_regions()
        for name in (*RATES, "latency", "latency_jitter", "slow_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        for name in RATES:
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be a share in [0, 1], got {getattr(self, name)!r}")
        if self.throttle_error not in (
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "mixed",
        ):
            raise ValueError(f"throttle_error is not a throttling error: {self.throttle_error!r}")

    def _check_time_and_regions(self) -> None:
        for name in ("lifetime", "expire_unfinished"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        for name in ("new_per_second", "background_tps", "new_start_after", "new_finish_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
        if self.regions is not None:
            bad = [r for r in self.regions if not _REGION.fullmatch(str(r))]
            if bad or not self.regions:
                raise ValueError(f"regions must be AWS region names, got {list(self.regions)}")
        for region, tps in (self.region_tps or {}).items():
            if not tps > 0:
                raise ValueError(f"region_tps for {region} must be positive, got {tps!r}")

    @property
    def capacity(self) -> float:
        return self.capacity_for(self.tps)

    def capacity_for(self, tps: float | None) -> float:
        if self.burst is not None:
            return self.burst
        return max(1.0, (tps or 0.0) / 10)

    def tps_in(self, region: str) -> float | None:
        """The quota of ``region``: its own if ``region_tps`` names it, else ``tps``."""
        return (self.region_tps or {}).get(region, self.tps)
