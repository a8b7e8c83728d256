"""The limiter's pacing and adaptation, on an injected clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from batch.limiter import Limiter


class FakeTime:
    """A clock that moves only when told; ``sleep`` records and advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(t: FakeTime, rate: float, **kw: float) -> Limiter:
    return Limiter(rate, clock=t.clock, sleep=t.sleep, **kw)


async def test_paces_evenly_instead_of_bursting() -> None:
    t = FakeTime()
    lim = limiter(t, 5)
    admitted = []
    for _ in range(6):
        async with lim:
            admitted.append(t.now)
    assert admitted == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


async def test_concurrent_waiters_get_consecutive_slots_in_order() -> None:
    t = FakeTime()
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)

    lim = Limiter(10, clock=t.clock, sleep=record)
    await asyncio.gather(*(lim.acquire() for _ in range(5)))
    # First is admitted at once, each next one 1/rate later: no window-sized burst.
    assert recorded == pytest.approx([0.1, 0.2, 0.3, 0.4])


async def test_idle_time_is_not_saved_up_as_a_burst() -> None:
    t = FakeTime()
    lim = limiter(t, 10)
    await lim.acquire()
    t.now = 100.0  # a long pause
    await lim.acquire()
    await lim.acquire()
    assert t.sleeps == pytest.approx([0.1])


async def test_throttle_cuts_rate_once_per_reaction_window() -> None:
    t = FakeTime()
    lim = limiter(t, 10, decrease=0.5, reaction=1.0)
    lim.throttled()
    assert lim.rate == pytest.approx(5)
    t.now = 0.5
    lim.throttled()  # same window: a burst of throttles is one signal
    assert lim.rate == pytest.approx(5)
    t.now = 1.6
    lim.throttled()
    assert lim.rate == pytest.approx(2.5)
    assert lim.cuts == 2
    assert lim.period == pytest.approx(0.4)


async def test_success_recovers_gradually_up_to_the_maximum() -> None:
    t = FakeTime()
    lim = limiter(t, 10, decrease=0.5, recovery=0.1)
    lim.throttled()
    assert lim.rate == pytest.approx(5)
    t.now = 1.0
    lim.succeeded()  # 1 s later: +0.1 * 10 per second
    assert lim.rate == pytest.approx(6)
    t.now = 2.0
    lim.succeeded()
    assert lim.rate == pytest.approx(7)
    t.now = 100.0
    lim.succeeded()
    assert lim.rate == pytest.approx(10)


async def test_rate_never_drops_below_the_floor() -> None:
    t = FakeTime()
    lim = limiter(t, 10, decrease=0.1, min_rate=2)
    for i in range(10):
        t.now = 2.0 * i
        lim.throttled()
    assert lim.rate == pytest.approx(2)


async def test_new_slots_follow_the_new_pace_after_a_cut() -> None:
    t = FakeTime()
    lim = limiter(t, 10, decrease=0.5)
    await lim.acquire()  # t=0, next slot 0.1
    lim.throttled()  # rate 5 -> period 0.2
    await lim.acquire()  # admitted at 0.1 (slot already due at the old pace)
    await lim.acquire()  # then 0.2 later
    assert t.now == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -1}, "rate"),
        ({"rate": float("inf")}, "rate"),
        ({"rate": 5, "decrease": 1.5}, "decrease"),
        ({"rate": 5, "recovery": 0}, "recovery"),
    ],
)
def test_rejects_bad_arguments_naming_them(kwargs: dict[str, float], name: str) -> None:
    rate = kwargs.pop("rate")
    with pytest.raises(ValueError, match=name):
        Limiter(rate, decrease=kwargs.get("decrease", 0.7), recovery=kwargs.get("recovery", 0.05))
