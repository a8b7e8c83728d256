"""The worker pool on its own: plain handlers passed in, no client, no sleeps."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterable

import pytest

from batch.engine.collector import THRESHOLDS
from batch.engine.pool import worker_pool
from batch.engine.stops import Stop
from batch.errors import AccessError

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


async def test_while_a_pool_runs_start_up_objects_are_frozen_and_young_passes_are_rarer() -> None:
    """The collector's shape while answers arrive (batch/engine/collector.py), and after."""
    before = (gc.get_threshold(), gc.get_freeze_count())
    seen: list[tuple[tuple[int, int, int], int]] = []

    async def handle(_: str) -> None:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))

    await feed(handle, IDS[:2], concurrency=2)

    assert [threshold for threshold, _ in seen] == [THRESHOLDS] * 2
    assert all(frozen > 0 for _, frozen in seen)  # this test's modules, at the least
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


async def test_the_collector_is_restored_only_when_the_last_of_overlapping_pools_ends() -> None:
    before = gc.get_threshold()
    first = worker_pool(_nothing, concurrency=1, stop=Stop())
    second = worker_pool(_nothing, concurrency=1, stop=Stop())
    await first.__aenter__()
    await second.__aenter__()
    await first.__aexit__(None, None, None)  # regions end in any order
    assert gc.get_threshold() == THRESHOLDS
    await second.__aexit__(None, None, None)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def _nothing(_: str) -> None:
    return None
