"""Settling pending sessions on virtual time: asked every interval, for at most a duration."""

from __future__ import annotations

import asyncio

from batch.engine.settle import Settler
from tests.fakes import VirtualClock


async def test_a_pending_session_is_asked_again_every_interval_until_it_settles() -> None:
    clock = VirtualClock()
    settler = Settler(interval=10, duration=180, clock=clock)
    asked: list[float] = []

    async def put(session_id: str) -> None:
        asked.append(clock.now())
        settler.answered(session_id, pending=len(asked) < 3)  # settles on the third re-ask

    settler.sent()
    assert settler.answered("s", pending=True)
    await settler.feed(put)
    assert asked == [10, 20, 30]
    assert settler.waiting == 0


async def test_settling_ends_when_the_duration_since_the_first_pending_answer_passes() -> None:
    clock = VirtualClock()
    settler = Settler(interval=10, duration=30, clock=clock)
    asked: list[float] = []

    async def put(session_id: str) -> None:
        asked.append(clock.now())
        settler.answered(session_id, pending=True)  # never starts

    settler.sent()
    settler.answered("s", pending=True)
    await settler.feed(put)
    assert asked == [10, 20, 30]


async def test_a_duration_of_zero_turns_settling_off() -> None:
    settler = Settler(interval=10, duration=0, clock=VirtualClock())
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
    clock = VirtualClock()
    stopping = False
    settler = Settler(interval=10, duration=180, clock=clock, stopping=lambda: stopping)
    settler.sent()
    settler.answered("b", pending=True)
    settler.sent()
    settler.answered("a", pending=True)
    stopping = True
    await settler.feed(lambda _: asyncio.sleep(0))
    assert settler.abandon() == ["a", "b"]


async def test_a_stop_while_waiting_for_a_turn_ends_feeding_at_once() -> None:
    # The wait for the next turn is a race of the answers (and wake) against the clock,
    # on virtual time as in production: a stop at t=3 does not wait for the turn at t=10.
    clock = VirtualClock()
    stopping = False
    settler = Settler(interval=10, duration=180, clock=clock, stopping=lambda: stopping)
    settler.sent()
    settler.answered("a", pending=True)
    asked: list[str] = []

    async def put(session_id: str) -> None:
        asked.append(session_id)

    async def stop_at_3() -> None:
        nonlocal stopping
        await clock.sleep(3)
        stopping = True
        settler.wake()

    await asyncio.gather(settler.feed(put), stop_at_3())
    assert clock.now() == 3
    assert asked == []
    assert settler.abandon() == ["a"]


async def test_an_answer_while_waiting_is_taken_in_before_the_next_turn() -> None:
    # "b" answers pending at t=4 while "a" waits for its turn at t=10: "b" is due at 14,
    # and both are asked in turn order on the one clock.
    clock = VirtualClock()
    settler = Settler(interval=10, duration=15, clock=clock)
    settler.sent()
    settler.sent()
    settler.answered("a", pending=True)
    asked: list[tuple[str, float]] = []

    async def put(session_id: str) -> None:
        asked.append((session_id, clock.now()))
        settler.answered(session_id, pending=False)

    async def b_answers_at_4() -> None:
        await clock.sleep(4)
        settler.answered("b", pending=True)

    await asyncio.gather(settler.feed(put), b_answers_at_4())
    assert asked == [("a", 10), ("b", 14)]
    assert settler.waiting == 0
