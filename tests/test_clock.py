"""The one clock: the loop's in production, the virtual one the unit tests run on."""

from __future__ import annotations

import asyncio

import pytest

from batch.pacing.clock import LOOP, wait_for_event
from tests.fakes import VirtualClock


async def test_the_production_clock_is_the_running_loops() -> None:
    loop = asyncio.get_running_loop()
    before = loop.time()
    now = LOOP.now()
    assert before <= now <= loop.time()
    await LOOP.sleep(0)


async def test_time_stands_still_while_any_task_can_run() -> None:
    clock = VirtualClock()
    seen: list[float] = []

    async def busy() -> None:
        for _ in range(50):
            seen.append(clock.now())
            await asyncio.sleep(0)  # runnable all along: no reason for time to move

    async def sleeper() -> None:
        await clock.sleep(5)
        seen.append(clock.now())

    await asyncio.gather(busy(), sleeper())
    assert seen[:-1] == [0.0] * 50
    assert seen[-1] == 5.0


async def test_once_every_task_waits_time_jumps_to_the_earliest_deadline_in_order() -> None:
    clock = VirtualClock(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    await asyncio.gather(sleeper("c", 3), sleeper("a", 1), sleeper("b", 2), sleeper("a2", 1))
    assert woke == [("a", 101.0), ("a2", 101.0), ("b", 102.0), ("c", 103.0)]
    assert clock.sleeps == [3, 1, 2, 1]


async def test_a_cancelled_sleeper_does_not_move_time() -> None:
    clock = VirtualClock()
    long = asyncio.ensure_future(clock.sleep(1000))
    await asyncio.sleep(0)
    long.cancel()
    await clock.sleep(2)
    assert clock.now() == 2.0
    assert long.cancelled()


async def test_advance_fires_what_falls_due_at_its_own_time_and_never_goes_back() -> None:
    clock = VirtualClock(autojump=False)
    fired: list[float] = []
    clock.call_at(3.0, lambda: fired.append(clock.now()))
    clock.call_at(1.0, lambda: fired.append(clock.now()))
    clock.call_at(9.0, lambda: fired.append(clock.now()))
    clock.advance(5.0)
    assert fired == [1.0, 3.0]
    assert clock.now() == 5.0
    clock.time = 9.0
    assert fired == [1.0, 3.0, 9.0]
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


async def test_without_autojump_a_sleeper_waits_for_an_explicit_advance() -> None:
    clock = VirtualClock(autojump=False)
    sleeping = asyncio.ensure_future(clock.sleep(10))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not sleeping.done()
    clock.advance(10)
    await sleeping
    assert clock.now() == 10.0


async def test_waiting_for_an_event_ends_at_the_event_or_at_the_delay_on_that_clock() -> None:
    clock = VirtualClock()
    event = asyncio.Event()
    assert not await wait_for_event(clock, event, 30)
    assert clock.now() == 30.0

    async def set_at_4() -> None:
        await clock.sleep(4)
        event.set()

    got, _ = await asyncio.gather(wait_for_event(clock, event, 30), set_at_4())
    assert got
    assert clock.now() == 34.0
    assert await wait_for_event(clock, event, None)  # already set: at once
    assert clock.now() == 34.0


async def test_waiting_on_the_loops_clock_with_no_delay_waits_for_the_event() -> None:
    event = asyncio.Event()
    waiting = asyncio.ensure_future(wait_for_event(LOOP, event, None))
    await asyncio.sleep(0)
    assert not waiting.done()
    event.set()
    assert await waiting
    assert not await wait_for_event(LOOP, asyncio.Event(), 0.001)
