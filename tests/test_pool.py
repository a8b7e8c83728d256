"""The worker pool on its own: plain handlers passed in, no client, no sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import pytest

from batch.errors import AccessError
from batch.run.pool import worker_pool
from batch.run.stops import Stop

IDS = [f"s{n}" for n in range(20)]


async def feed(
    handle: Callable[[str], Awaitable[None]],
    ids: Iterable[str],
    *,
    concurrency: int,
    stop: Stop | None = None,
    queue_size: int | None = None,
) -> None:
    """Put every ID in a pool of ``handle`` workers and leave it."""
    pool_of = worker_pool(
        handle,
        concurrency=concurrency,
        stop=Stop() if stop is None else stop,
        queue_size=queue_size,
    )
    async with pool_of as pool:
        for session_id in ids:
            await pool.put(session_id)


async def test_every_id_put_in_the_pool_is_handled_once() -> None:
    handled: list[str] = []

    async def handle(session_id: str) -> None:
        await asyncio.sleep(0)  # a yield, so workers interleave
        handled.append(session_id)

    await feed(handle, IDS, concurrency=3)

    assert sorted(handled) == sorted(IDS)
    assert len(handled) == len(IDS)


async def test_the_queue_is_bounded_so_the_producer_waits_for_the_workers() -> None:
    put = 0
    ahead: list[int] = []  # IDs put but not yet taken up, seen as each one is taken up
    taken = 0

    async def handle(_: str) -> None:
        nonlocal taken
        taken += 1
        ahead.append(put - taken)
        await asyncio.sleep(0)

    async with worker_pool(handle, concurrency=2, stop=Stop(), queue_size=3) as pool:
        for session_id in IDS:
            await pool.put(session_id)
            put += 1

    assert taken == len(IDS)
    assert max(ahead) <= 3  # never more queued than the queue holds


async def test_after_a_stop_queued_ids_are_skipped_and_the_one_in_hand_finishes() -> None:
    stop = Stop()
    handled: list[str] = []

    async def handle(session_id: str) -> None:
        stop.request("test")  # the first session asks the run to stop
        await asyncio.sleep(0)
        handled.append(session_id)

    # the queue takes them all before any worker runs
    await feed(handle, IDS, concurrency=1, stop=stop, queue_size=len(IDS))

    assert handled == [IDS[0]]


async def test_an_access_error_cancels_the_other_workers() -> None:
    never = asyncio.Event()
    started: list[str] = []
    cancelled: list[str] = []

    async def handle(session_id: str) -> None:
        started.append(session_id)
        if session_id == "denied":
            raise AccessError("AccessDeniedException: no")
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(session_id)
            raise

    with pytest.raises(ExceptionGroup) as raised:
        await feed(handle, ["a", "b", "denied"], concurrency=3)

    assert raised.group_contains(AccessError)
    assert sorted(cancelled) == ["a", "b"]


async def test_a_pool_needs_at_least_one_worker() -> None:
    async def handle(_: str) -> None:
        return None

    with pytest.raises(ValueError, match="concurrency"):
        await feed(handle, IDS, concurrency=0)
