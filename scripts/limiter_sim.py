"""Replay the real Limiter against a model token bucket, in simulated time.

A tuning aid, not a benchmark: it runs :class:`batch.pacing.limiter.Limiter` (the class the
tool uses, built with the tool's defaults, on an injected clock) against a token-bucket
quota with a fixed latency, sends as fast as the limiter allows (no concurrency limit),
feeds every answer back, and reports what happened. Wake-ups are late and requests reach
the bucket late by up to ``--jitter`` (2 ms, seeded), as on a real loop and network: with
a bucket of one token that is what decides whether a request exactly at the quota goes
through. Deterministic and fast, so a change is judged on the whole grid before spending
real minutes on ``scripts/bench.py``, which is what the measured figures in
docs/BENCHMARKS.md come from.

    .venv/bin/python scripts/limiter_sim.py                    # the grid (about 30 s)
    .venv/bin/python scripts/limiter_sim.py --quota 500 --latency 0.05 --burst 100 \\
        --start none --timeline                                 # one scenario, per second

The grid: quota 5, 50, 150, 500, 1000/s x latency 5, 50, 200 ms x burst Q/5 (at least
one token) and Q x start (no rate: slow start from 5/s under a ceiling of 10,000/s;
rate = Q; rate = 3 x Q), each for ``--seconds`` (20) of simulated time or 1,500 requests'
worth at the quota if longer (five minutes at 5/s). Columns: share of quota over the
whole run and after the first throttle (successes sent from then to the end / quota x
time), the time from the first throttle until every later window of ``max(1 s, 20 / Q)``
carries at least 0.95 of the quota ("-" when never throttled and at the quota from the
start, "never" when it does not happen), and the share of all requests throttled; then
the cells under 0.95 after the first throttle, and those throttled 1% or more.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batch.config import Settings  # after the path set-up above
from batch.pacing.limiter import Limiter

Make = Callable[[Callable[[], float], Callable[[float], Awaitable[None]]], Limiter]
AUTO_MAX_RATE = 10_000.0  # as the tool builds it without --rate
RATE_START = Settings.model_fields["rate_start"].default
DECREASE = Settings.model_fields["rate_decrease"].default
_REQUESTS = 1500  # a grid cell lasts at least this many requests' worth at the quota


@dataclass(frozen=True)
class Scenario:
    quota: float
    latency: float
    burst: float
    start: str  # "none", "Q" or "3Q"
    seconds: float


@dataclass(frozen=True)
class Result:
    sends: list[tuple[float, bool]]  # (sent at, went through), in order
    first_throttle: float | None  # when the first throttled request was sent
    end: float


class World:
    """Simulated time: a clock, and a sleep that delivers the answers due meanwhile."""

    def __init__(self, jitter: float = 0.0) -> None:
        self.now = 0.0
        self.limiter: Limiter | None = None
        self.jitter = jitter
        self.random = random.Random(14)  # noqa: S311 - a seeded simulation, not a secret
        self._answers: list[tuple[float, int, float, bool]] = []
        self._n = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        late = self.random.uniform(0, self.jitter)  # a busy loop wakes a little late
        self.deliver(self.now + seconds + late)

    def deliver(self, until: float) -> None:
        assert self.limiter is not None
        while self._answers and self._answers[0][0] <= until:
            self.now, _, sent_at, ok = heapq.heappop(self._answers)
            (self.limiter.succeeded if ok else self.limiter.throttled)(sent_at)
        self.now = max(self.now, until)

    def answer(self, at: float, sent_at: float, ok: bool) -> None:
        heapq.heappush(self._answers, (at, next(self._n), sent_at, ok))


def make_limiter(s: Scenario, tune: dict[str, float]) -> Make:
    """The limiter as the tool builds it (``batch.run.fetch.limiter_for``'s defaults)."""
    tune = {"decrease": DECREASE, **tune}
    if s.start == "none":
        return lambda c, z: Limiter(AUTO_MAX_RATE, start=RATE_START, clock=c, sleep=z, **tune)
    rate = s.quota * (3 if s.start == "3Q" else 1)
    return lambda c, z: Limiter(rate, clock=c, sleep=z, **tune)


async def simulate(
    s: Scenario, make: Make, drop: tuple[float, float] | None = None, jitter: float = 0.0
) -> Result:
    """Send for ``s.seconds`` through a bucket of ``s.quota``/s (halved during ``drop``).

    ``jitter`` (seconds): each wake-up is late, and each request reaches the bucket after
    its release, by up to this much (uniform, seeded), as on a real loop and network.
    """
    world = World(jitter)
    limiter = world.limiter = make(world.clock, world.sleep)
    tokens, filled = s.burst, 0.0
    sends: list[tuple[float, bool]] = []
    first: float | None = None
    while world.now < s.seconds:
        t = await limiter.acquire()
        rate = s.quota / 2 if drop and drop[0] <= t < drop[1] else s.quota
        at = max(filled, t + world.random.uniform(0, jitter))  # reaches the bucket, in order
        tokens, filled = min(s.burst, tokens + (at - filled) * rate), at
        ok = tokens >= 1 - 1e-9  # a request exactly on the refill is not a float's victim
        tokens -= ok
        if not ok and first is None:
            first = t
        sends.append((t, ok))
        world.answer(t + s.latency, t, ok)
    return Result(sends, first, world.now)


def summarize(s: Scenario, r: Result) -> tuple[float, float | None, float]:
    """Share of quota after the first throttle, time to 0.95 (None: never), throttled."""
    t0 = r.first_throttle if r.first_throttle is not None else 0.0
    oks = [t for t, ok in r.sends if ok and t >= t0]
    share = len(oks) / (s.quota * (r.end - t0))
    window = max(1.0, 20 / s.quota)
    starts = [t0 + k * 0.05 for k in range(int((r.end - window - t0) / 0.05) + 1)]
    counts = [sum(1 for t in oks if a <= t < a + window) >= 0.95 * s.quota * window for a in starts]
    settled = next((i for i in range(len(counts)) if all(counts[i:])), None)
    reach = None if settled is None else starts[settled] - t0
    throttled = sum(1 for _, ok in r.sends if not ok) / len(r.sends)
    return share, reach, throttled


def grid(seconds: float, tune: dict[str, float], jitter: float) -> None:
    print(
        "| quota | latency | burst | start | share of run | share after 1st throttle "
        "| to 0.95 | throttled |"
    )
    print("|---|---|---|---|---|---|---|---|")
    low, throttly = [], []
    for q, lat, b, start in itertools.product(
        (5, 50, 150, 500, 1000), (0.005, 0.05, 0.2), ("Q/5", "Q"), ("none", "Q", "3Q")
    ):
        burst = max(1.0, q / 5) if b == "Q/5" else float(q)
        s = Scenario(q, lat, burst, start, max(seconds, _REQUESTS / q))
        r = asyncio.run(simulate(s, make_limiter(s, tune), jitter=jitter))
        share, reach, throttled = summarize(s, r)
        whole = sum(ok for _, ok in r.sends) / (q * r.end)
        shown = "never" if reach is None else f"{reach:.2f} s"
        if r.first_throttle is None:
            shown = "-"
        rate = {"none": "no rate", "Q": "rate = Q", "3Q": "rate = 3Q"}[start]
        cell = f"{q} {lat * 1000:g} ms {b} {rate}"
        low += [cell] if share < 0.95 else []
        throttly += [cell] if throttled >= 0.01 else []
        print(
            f"| {q} | {lat * 1000:g} ms | {b} | {rate} | {whole:.3f} | {share:.3f} | {shown} "
            f"| {100 * throttled:.2f}% |"
        )
    print(f"\nshare after the first throttle under 0.95: {len(low)} cells: {', '.join(low)}")
    print(f"1% or more throttled: {len(throttly)} cells: {', '.join(throttly)}")


def one(s: Scenario, tune: dict[str, float], timeline: bool, drop: bool, jitter: float) -> None:
    span = (s.seconds / 3, 2 * s.seconds / 3) if drop else None
    r = asyncio.run(simulate(s, make_limiter(s, tune), span, jitter))
    share, reach, throttled = summarize(s, r)
    print(
        f"quota {s.quota:g}/s, burst {s.burst:g}, latency {s.latency:g} s, start {s.start}: "
        f"first throttle at {r.first_throttle}, share after it {share:.3f}, "
        f"to 0.95 {reach}, throttled {100 * throttled:.2f}%"
    )
    if timeline:
        per: dict[int, list[int]] = {}
        for t, ok in r.sends:
            per.setdefault(int(t), [0, 0])[0 if ok else 1] += 1
        print("per second, through/throttled: " + " ".join(f"{a}/{b}" for a, b in per.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quota", type=float, help="one scenario instead of the grid")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--burst", type=float, help="default: quota / 5")
    parser.add_argument("--start", choices=("none", "Q", "3Q"), default="none")
    parser.add_argument("--timeline", action="store_true")
    parser.add_argument("--drop", action="store_true", help="halve the quota mid-run")
    parser.add_argument(
        "--jitter", type=float, default=0.002, help="seconds of wake-up and network jitter"
    )
    for name in ("decrease", "margin", "ramp", "probe", "growth"):
        parser.add_argument(f"--{name}", type=float)
    args = parser.parse_args()
    tune = {
        k: v for k in ("decrease", "margin", "ramp", "probe", "growth") if (v := getattr(args, k))
    }
    if args.quota is None:
        grid(args.seconds, tune, args.jitter)
        return
    burst = args.burst or max(1.0, args.quota / 5)
    s = Scenario(args.quota, args.latency, burst, args.start, args.seconds)
    one(s, tune, args.timeline, args.drop, args.jitter)


if __name__ == "__main__":
    main()
