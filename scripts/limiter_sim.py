"""Replay the real Limiter against a model token bucket, in simulated time.

A tuning aid, not a benchmark: it runs :class:`batch.pacing.limiter.Limiter` (the class the tool
uses, on an injected clock) against a token-bucket quota with a fixed latency, sends as
fast as the limiter allows, feeds every answer back, and prints share of quota, throttles
and the per-second timeline. Deterministic and fast (a minute of traffic in well under a
second), so parameter changes can be compared before spending real minutes on
``scripts/bench.py``, which is what the figures in docs/BENCHMARKS.md come from.

    .venv/bin/python scripts/limiter_sim.py                 # the standard scenarios
    .venv/bin/python scripts/limiter_sim.py --probe 8 --decrease 0.6
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch.pacing.limiter import Limiter  # after the path set-up above

Make = Callable[[Callable[[], float], Callable[[float], Awaitable[None]]], Limiter]


@dataclass
class Result:
    share: float
    throttled: int
    sent: int
    seconds: list[tuple[int, int]] = field(default_factory=list)


class World:
    """Simulated time: a clock, and a sleep that delivers the answers due meanwhile."""

    def __init__(self) -> None:
        self.now = 0.0
        self.limiter: Limiter | None = None
        self._answers: list[tuple[float, int, float, bool]] = []
        self._n = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.deliver(self.now + seconds)

    def deliver(self, until: float) -> None:
        assert self.limiter is not None
        while self._answers and self._answers[0][0] <= until:
            self.now, _, sent_at, ok = heapq.heappop(self._answers)
            (self.limiter.succeeded if ok else self.limiter.throttled)(sent_at)
        self.now = until

    def answer(self, at: float, sent_at: float, ok: bool) -> None:
        self._n += 1
        heapq.heappush(self._answers, (at, self._n, sent_at, ok))


async def simulate(  # the scenario's knobs
    make: Make,
    *,
    quota: float,
    burst: float,
    latency: float,
    sessions: int,
    drop: tuple[float, float] | None = None,
) -> Result:
    """``sessions`` answers through a bucket of ``quota``/s (halved during ``drop``)."""
    world = World()
    limiter = world.limiter = make(world.clock, world.sleep)
    tokens, filled, sent, done, throttled = burst, 0.0, 0, 0, 0
    per_second: dict[int, list[int]] = {}
    while done < sessions:
        t = await limiter.acquire()
        rate = quota / 2 if drop and drop[0] <= t < drop[1] else quota
        tokens, filled = min(burst, tokens + (t - filled) * rate), t
        ok = tokens >= 1
        if ok:
            tokens -= 1
            done += 1
        else:
            throttled += 1
        per_second.setdefault(int(t), [0, 0])[0 if ok else 1] += 1
        sent += 1
        world.answer(t + latency, t, ok)
    seconds = [(ok, th) for _, (ok, th) in sorted(per_second.items())]
    return Result(sessions / world.now / quota, throttled, sent, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quota", type=float, default=50.0)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--sessions", type=int, default=3000)
    for name in ("decrease", "margin", "ramp", "probe"):
        parser.add_argument(f"--{name}", type=float)
    args = parser.parse_args()
    tune = {
        k: v for k, v in vars(args).items() if k in ("decrease", "margin", "ramp", "probe") and v
    }
    q, burst = args.quota, max(1.0, args.quota / 10)
    scenarios: dict[str, Make] = {
        "rate = Q": lambda c, s: Limiter(q, clock=c, sleep=s, **tune),
        "rate = 1.2 Q": lambda c, s: Limiter(1.2 * q, clock=c, sleep=s, **tune),
        "rate = 3 Q": lambda c, s: Limiter(3 * q, clock=c, sleep=s, **tune),
        "no rate": lambda c, s: Limiter(10_000, start=5.0, clock=c, sleep=s, **tune),
    }
    print(f"quota {q:g}/s, burst {burst:g}, latency {args.latency:g}s, {args.sessions} sessions")
    for name, make in scenarios.items():
        r = asyncio.run(
            simulate(make, quota=q, burst=burst, latency=args.latency, sessions=args.sessions)
        )
        print(f"{name:14} share {r.share:.3f}  throttled {100 * r.throttled / r.sent:.2f}%")
    third = args.sessions / q / 3
    r = asyncio.run(
        simulate(
            scenarios["rate = Q"],
            quota=q,
            burst=burst,
            latency=args.latency,
            sessions=args.sessions,
            drop=(third, 2 * third),
        )
    )
    print(f"quota halved from {third:.0f}s to {2 * third:.0f}s, 200s/throttles per second:")
    print("  " + " ".join(f"{ok}/{th}" for ok, th in r.seconds))


if __name__ == "__main__":
    main()
