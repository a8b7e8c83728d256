"""One paced call: attempts under a limiter and a retry policy, errors converted once.

:class:`PacedCall` is the discipline every AWS call of a run follows, Rekognition and S3
alike: each attempt, retries included, waits for its turn at the limiter; an exception
leaves the attempt converted by :func:`batch.aws.convert.convert_error`; the limiter hears
of every throttle (and may cut its rate) and every success; the retry policy decides
whether to try again, and stops retrying once ``give_up()`` says the run is stopping.
When the policy gives up, the last converted error is re-raised untouched.

With ``stopping`` (the run's stop event, Rekognition calls), a request whose turn has not
come when the run stops is never sent: the wait ends at once with :class:`NotSent` (or,
for a retry, the last error), so a time budget stops new requests when it ends and only
those already in flight finish.
"""

from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from batch.aws.convert import convert_error
from batch.errors import ThrottledError
from batch.pacing.retry import RetryPolicy

__all__ = ["NotSent", "Pace", "PacedCall"]

T = TypeVar("T")


class Pace(Protocol):
    """What a paced call needs of a limiter (:class:`batch.pacing.limiter.Limiter`)."""

    async def __aenter__(self) -> float: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def throttled(self, sent_at: float | None = None) -> bool: ...

    def succeeded(self, sent_at: float | None = None) -> None: ...


class NotSent(Exception):  # not an error: a request the stop kept back
    """A request not sent because the run stopped before its turn: the session is left
    for a rerun, as one still queued."""


class _Waiting:
    """The tasks waiting for a turn under one stop event: when it is set, one watcher task
    cancels them all at once (they raise :class:`NotSent`). A turn costs a set entry, not
    the two tasks and the ``asyncio.wait`` each request made before."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self.stopping = stopping
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopped: set[asyncio.Task[Any]] = set()  # cancelled by the stop, not otherwise
        self._watcher: asyncio.Task[None] | None = None

    def watch(self) -> None:
        """Start the watcher for the running loop (once; again in a new loop)."""
        watcher = self._watcher
        if watcher is None or watcher.get_loop() is not asyncio.get_running_loop():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        await self.stopping.wait()
        for task in self.tasks:
            self.stopped.add(task)
            task.cancel()
        self.tasks.clear()


class _Turn:
    """``async with``: the limiter's turn, or :class:`NotSent` as soon as ``stopping`` is set."""

    def __init__(self, limiter: Pace, waiting: _Waiting) -> None:
        self._limiter, self._waiting = limiter, waiting

    async def __aenter__(self) -> float:
        waiting = self._waiting
        if waiting.stopping.is_set():
            raise NotSent
        task = asyncio.current_task()
        if task is None:  # awaited outside a task: no stop to watch for
            return await self._limiter.__aenter__()
        waiting.watch()
        waiting.tasks.add(task)
        try:
            sent_at = await self._limiter.__aenter__()
        except asyncio.CancelledError:
            if task not in waiting.stopped:
                raise
            waiting.stopped.discard(task)
            if task.uncancel() > 0:  # cancelled from outside as well: that wins
                raise
            raise NotSent from None
        finally:
            waiting.tasks.discard(task)
        if waiting.stopping.is_set():  # the turn came with the stop: give it back
            await self._limiter.__aexit__(None, None, None)
            raise NotSent
        return sent_at

    async def __aexit__(self, *exc_info: object) -> None:
        await self._limiter.__aexit__(*exc_info)


def _never() -> bool:
    return False


def _ignore(_: BaseException | None) -> None:
    return None


class PacedCall:
    """Await ``request()`` under ``limiter`` and ``policy``: ``await paced(request)``.

    ``on_attempt(error)`` hears of every attempt (``None`` for a success); ``on_cut()`` of
    every throttle that cut the limiter's rate. A call made with ``stoppable=False`` (the
    input, the report's upload) keeps retrying after ``give_up()`` turns true.
    """

    def __init__(
        self,
        limiter: Pace,
        policy: RetryPolicy,
        *,
        give_up: Callable[[], bool] = _never,
        on_attempt: Callable[[BaseException | None], None] = _ignore,
        on_cut: Callable[[], None] = lambda: None,
        rng: _random.Random | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.limiter = limiter
        self._waiting = None if stopping is None else _Waiting(stopping)
        self.policy = policy
        self._give_up = give_up
        self._on_attempt = on_attempt
        self._on_cut = on_cut
        self._random = (rng or _random.Random()).random  # noqa: S311  # jitter, not crypto

    async def __call__(self, request: Callable[[], Awaitable[T]], *, stoppable: bool = True) -> T:
        waiting = self._waiting if stoppable else None
        last: list[Exception] = []  # the last attempt's error, re-raised if a retry is kept back

        async def attempt(_: int) -> T:
            try:
                return await self._attempt(request, waiting)
            except NotSent:
                if last:
                    raise last[-1] from None
                raise
            except Exception as exc:
                last[:] = [exc]
                raise

        give_up = self._give_up if stoppable else _never
        return await self.policy.call(attempt, random=self._random, give_up=give_up)

    async def _attempt(self, request: Callable[[], Awaitable[T]], waiting: _Waiting | None) -> T:
        turn = self.limiter if waiting is None else _Turn(self.limiter, waiting)
        async with turn as sent_at:
            try:
                result = await request()
            except Exception as exc:  # converted at the one boundary
                error = convert_error(exc)  # an unknown exception type is re-raised as a bug
                if isinstance(error, ThrottledError) and self.limiter.throttled(sent_at):
                    self._on_cut()
                self._on_attempt(error)
                if error is exc:
                    raise
                raise error from exc
        self.limiter.succeeded(sent_at)
        self._on_attempt(None)
        return result
