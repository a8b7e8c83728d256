"""Settling pending sessions on virtual time: asked every interval, for at most a duration."""

from __future__ import annotations

import asyncio

from batch.engine.settle import Settler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_a_pending_session_is_asked_again_every_interval_until_it_settles() -> None:
    clock = Clock()
    settler = Settler(interval=10, duration=180, clock=clock, sleep=clock.sleep)
    asked: list[float] = []

    async def put(session_id: str) -> None:
        asked.append(clock.now)
        settler.answered(session_id, pending=len(asked) < 3)  # settles on the third re-ask

    settler.sent()
    assert settler.answered("s", pending=True)
    await settler.feed(put)
    assert asked == [10, 20, 30]
    assert settler.waiting == 0


async def test_settling_ends_when_the_duration_since_the_first_pending_answer_passes() -> None:
    clock = Clock()
    settler = Settler(interval=10, duration=30, clock=clock, sleep=clock.sleep)
    asked: list[float] = []

    async def put(session_id: str) -> None:
        asked.append(clock.now)
        settler.answered(session_id, pending=True)  # never starts

    settler.sent()
    settler.answered("s", pending=True)
    await settler.feed(put)
    assert asked == [10, 20, 30]


async def test_a_duration_of_zero_turns_settling_off() -> None:
    settler = Settler(interval=10, duration=0, clock=Clock())
    settler.sent()
    assert not settler.answered("s", pending=True)
    assert settler.waiting == 0


async def test_feeding_waits_for_sessions_in_flight_before_it_ends() -> None:
    settler = Settler(interval=10, duration=180)
    settler.sent()
    feeding = asyncio.create_task(settler.feed(lambda _: asyncio.sleep(0)))
    await asyncio.sleep(0)
    assert not feeding.done()  # an answer is still to come: it may be pending
    settler.answered("s", pending=False)
    await asyncio.wait_for(feeding, timeout=5)


async def test_a_stop_ends_feeding_and_names_the_sessions_left_waiting() -> None:
    clock = Clock()
    stopping = False
    settler = Settler(
        interval=10, duration=180, clock=clock, sleep=clock.sleep, stopping=lambda: stopping
    )
    settler.sent()
    settler.answered("b", pending=True)
    settler.sent()
    settler.answered("a", pending=True)
    stopping = True
    await settler.feed(lambda _: asyncio.sleep(0))
    assert settler.abandon() == ["a", "b"]
