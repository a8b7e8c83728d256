"""The in-flight gate: rate x latency x 1.5 + 2 in flight, under the ceiling (virtual time)."""

from __future__ import annotations

import asyncio
import contextlib
import math

import pytest

from batch.pacing.gate import Gate
from batch.pacing.limiter import Limiter
from tests.fakes import VirtualClock


class Service:
    """Answers after ``latency`` virtual seconds; counts what is at it at once."""

    def __init__(self, t: VirtualClock, latency: float) -> None:
        self.t = t
        self.latency = latency
        self.now_serving = 0
        self.most = 0
        self.answered: list[float] = []

    async def call(self, gate: Gate) -> None:
        async with gate as sent_at:
            self.now_serving += 1
            self.most = max(self.most, self.now_serving)
            await self.t.sleep(self.latency)
            self.now_serving -= 1
        gate.succeeded(sent_at)
        self.answered.append(self.t.now())


def gated(t: VirtualClock, rate: float, ceiling: int = 256) -> Gate:
    return Gate(Limiter(rate, clock=t), ceiling=ceiling, clock=t)


async def test_in_flight_follows_rate_times_latency_and_the_rate_is_kept() -> None:
    t = VirtualClock()
    gate = gated(t, 100)
    service = Service(t, 0.2)
    limits: list[tuple[float, int, int]] = []

    async def watch() -> None:
        while len(service.answered) < 300:
            limits.append((t.now(), gate.in_flight, gate.limit))
            await t.sleep(0.01)

    await asyncio.gather(watch(), *(service.call(gate) for _ in range(300)))
    assert gate.latency == pytest.approx(0.2)
    assert gate.limit == math.ceil(100 * 0.2 * 1.5) + 2  # 32
    # Before any answer 1 s is assumed: 100 x 1 x 1.5 + 2 = 152 let in (most wait at the
    # limiter); once those have gone, at most the learnt limit is in flight ...
    assert max(n for _, n, _ in limits) == 152
    learned = [(n, limit) for at, n, limit in limits if at >= 1.6]
    assert learned
    assert all(n <= limit <= 32 for n, limit in learned)
    assert service.most <= 100 * 0.2 + 1  # paced: rate x latency at the service
    # ... and that is enough to keep the set rate: 300 requests at 100/s, then one answer.
    assert service.answered[-1] == pytest.approx(2.99 + 0.2, abs=0.02)


async def test_a_slower_service_gets_more_in_flight_so_the_rate_holds() -> None:
    t = VirtualClock()
    gate = gated(t, 100)
    service = Service(t, 0.05)
    await asyncio.gather(*(service.call(gate) for _ in range(100)))
    fast_limit = gate.limit
    service.latency = 0.5  # the service slows down tenfold
    service.answered.clear()
    started = t.now()
    await asyncio.gather(*(service.call(gate) for _ in range(300)))
    assert fast_limit == math.ceil(100 * 0.05 * 1.5) + 2  # 10
    assert gate.limit == math.ceil(100 * 0.5 * 1.5) + 2  # 77
    assert service.most > 50  # rate x latency = 50 needed at the service
    # 300 at 100/s take 3 s plus one answer, not the 15 s that 10 in flight would allow
    assert service.answered[-1] - started < 3.0 + 0.5 + 0.5


async def test_an_explicit_ceiling_is_never_exceeded() -> None:
    t = VirtualClock()
    gate = gated(t, 100, ceiling=8)  # --concurrency 8
    service = Service(t, 0.2)
    await asyncio.gather(*(service.call(gate) for _ in range(120)))
    assert gate.most == 8
    assert service.most == 8
    # Little's law the other way round: 8 in flight at 0.2 s is 40/s, not the rate's 100
    assert service.answered[-1] == pytest.approx(120 / 40, abs=0.25)


async def test_at_a_low_rate_the_spare_still_lets_two_through() -> None:
    t = VirtualClock()
    gate = gated(t, 1)
    service = Service(t, 0.05)
    await asyncio.gather(*(service.call(gate) for _ in range(5)))
    assert gate.limit == math.ceil(1 * 0.05 * 1.5) + 2  # 3: one for the answer, two spare
    assert service.answered == pytest.approx([0.05, 1.05, 2.05, 3.05, 4.05])


async def test_a_caller_cancelled_while_waiting_gives_its_place_back() -> None:
    t = VirtualClock()
    gate = gated(t, 10, ceiling=1)
    service = Service(t, 0.1)

    async def scenario() -> None:
        first = asyncio.ensure_future(service.call(gate))
        await asyncio.sleep(0)  # the first is in flight: the only place
        waiting = asyncio.ensure_future(service.call(gate))
        await asyncio.sleep(0)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await first
        await service.call(gate)  # the place is free again

    await asyncio.gather(scenario())
    assert gate.in_flight == 0
    assert len(service.answered) == 2


def test_rejects_a_ceiling_below_one() -> None:
    with pytest.raises(ValueError, match="ceiling"):
        Gate(Limiter(10), ceiling=0)


async def test_a_caller_woken_and_cancelled_before_it_runs_passes_the_place_on() -> None:
    t = VirtualClock()
    gate = gated(t, 10, ceiling=1)
    service = Service(t, 0.1)

    async def scenario() -> None:
        async with gate:  # the only place, held here
            woken = asyncio.ensure_future(service.call(gate))
            after = asyncio.ensure_future(service.call(gate))
            await asyncio.sleep(0)  # both wait for the place
        woken.cancel()  # the leave woke it; cancelled before it could take the place
        with contextlib.suppress(asyncio.CancelledError):
            await woken
        await after  # the place went on to the next in line: no wake is lost

    await asyncio.gather(scenario())
    assert gate.in_flight == 0
    assert len(service.answered) == 1
    assert gate.most == 1
