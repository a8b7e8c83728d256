"""Retry policy: which errors, how many attempts, how long to wait in between.

Modelled on stamina: a keyword-only, immutable policy whose :meth:`RetryPolicy.call`
runs an async callable until it succeeds, raises an error the policy is not ``on``, runs
out of attempts or would overrun its ``timeout``; it then re-raises the original error
untouched. Waits are exponential with full jitter (AWS's recommendation: a uniformly random
wait between 0 and ``min(wait_max, wait_initial * wait_exp_base ** (n - 1))``).

Tests switch waiting off with ``wait_initial=0`` rather than sleeping, and inject a
virtual ``clock`` (:class:`batch.pacing.clock.Clock`) and ``random`` to check the schedule.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from batch.pacing.clock import LOOP, Clock

__all__ = ["RetryPolicy"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Retry ``on`` these exceptions, at most ``attempts`` calls within ``timeout`` seconds."""

    on: tuple[type[BaseException], ...]
    attempts: int
    timeout: float | None = None
    wait_initial: float = 0.2
    wait_max: float = 20.0
    wait_exp_base: float = 2.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be positive or None, got {self.timeout!r}")
        if not (0 <= self.wait_initial <= self.wait_max and math.isfinite(self.wait_max)):
            raise ValueError(
                f"wait_initial and wait_max must satisfy 0 <= wait_initial <= wait_max, "
                f"got {self.wait_initial!r} and {self.wait_max!r}"
            )
        if self.wait_exp_base < 1:
            raise ValueError(f"wait_exp_base must be at least 1, got {self.wait_exp_base!r}")

    def backoff(self, failures: int, draw: float = 1.0) -> float:
        """Seconds to wait after the ``failures``-th failed attempt; ``draw`` in [0, 1)."""
        try:
            grown = self.wait_initial * self.wait_exp_base ** (failures - 1)
        except OverflowError:  # a power past any float: far past the cap (unless from 0)
            grown = math.inf if self.wait_initial else 0.0
        ceiling = min(self.wait_max, grown)
        return ceiling * draw if self.jitter else ceiling

    async def call(
        self,
        fn: Callable[[int], Awaitable[T]],
        *,
        clock: Clock = LOOP,
        random: Callable[[], float] = _random.random,
        give_up: Callable[[], bool] = lambda: False,
    ) -> T:
        """Await ``fn(attempt)`` (attempt counts from 1) under this policy.

        ``give_up`` is asked before every further attempt; when it says so (the run is
        stopping) the last error is re-raised at once.
        """
        deadline = None if self.timeout is None else clock.now() + self.timeout
        attempt = 1
        while True:
            try:
                return await fn(attempt)
            except self.on:
                if attempt >= self.attempts or give_up():
                    raise
                wait = self.backoff(attempt, random())
                if deadline is not None and clock.now() + wait >= deadline:
                    raise
                if wait > 0:
                    await clock.sleep(wait)
                if give_up():
                    raise
                attempt += 1
