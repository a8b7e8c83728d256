"""The worker pool: a task group of workers fed by a bounded queue.

:func:`worker_pool` owns a task group of ``concurrency`` workers fed by a bounded queue,
so memory does not grow with the input and leaving the ``async with`` block means every
worker has finished or been cancelled (as aiometer's ``amap``). An exception from any
worker (an :class:`~batch.errors.AccessError`: not about one session) cancels the pool.
While a pool runs, the garbage collector is tuned for answers (:mod:`batch.engine.collector`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from batch.aws.paced import NotSent
from batch.engine.collector import tuned_collector
from batch.engine.stops import Stop

__all__ = ["Pool", "worker_pool"]


class Pool:
    """Handle to a running pool: feed session IDs with :meth:`put`."""

    def __init__(self, queue: asyncio.Queue[str | None]) -> None:
        self._queue = queue

    async def put(self, session_id: str) -> None:
        await self._queue.put(session_id)


@asynccontextmanager
async def worker_pool(
    handle: Callable[[str], Awaitable[object]],
    *,
    concurrency: int,
    stop: Stop,
    queue_size: int | None = None,
) -> AsyncIterator[Pool]:
    """Run ``handle(session_id)`` in ``concurrency`` workers for every ID put in the pool.

    Leaving the block normally waits until every queued ID is handled. After ``stop`` is
    requested, workers finish the session in hand and skip what is still queued (the
    caller finds those unhandled), as they skip a session whose request the stop kept
    back (:class:`~batch.aws.paced.NotSent`); the producer should stop putting.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size or 2 * concurrency)

    async def worker() -> None:
        while (session_id := await queue.get()) is not None:
            if not stop:  # once stopping, drain without starting anything new
                with contextlib.suppress(NotSent):  # its turn came after the stop: left
                    await handle(session_id)

    with tuned_collector():
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(worker())
            yield Pool(queue)
            for _ in range(concurrency):
                await queue.put(None)  # one end-of-input marker per worker
