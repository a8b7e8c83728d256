"""One paced call: attempts under a limiter and a retry policy, errors converted once.

:class:`PacedCall` is the discipline every AWS call of a run follows, Rekognition and S3
alike: each attempt, retries included, waits for its turn at the limiter; an exception
leaves the attempt converted by :func:`batch.aws.convert.convert_error`; the limiter hears
of every throttle (and may cut its rate) and every success; the retry policy decides
whether to try again, and stops retrying once ``give_up()`` says the run is stopping.
When the policy gives up, the last converted error is re-raised untouched.
"""

from __future__ import annotations

import random as _random
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from batch.aws.convert import convert_error
from batch.errors import ThrottledError
from batch.pacing.retry import RetryPolicy

__all__ = ["Pace", "PacedCall"]

T = TypeVar("T")


class Pace(Protocol):
    """What a paced call needs of a limiter (:class:`batch.pacing.limiter.Limiter`)."""

    async def __aenter__(self) -> float: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def throttled(self, sent_at: float | None = None) -> bool: ...

    def succeeded(self, sent_at: float | None = None) -> None: ...


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
    ) -> None:
        self.limiter = limiter
        self.policy = policy
        self._give_up = give_up
        self._on_attempt = on_attempt
        self._on_cut = on_cut
        self._random = (rng or _random.Random()).random  # noqa: S311  # jitter, not crypto

    async def __call__(self, request: Callable[[], Awaitable[T]], *, stoppable: bool = True) -> T:
        async def attempt(_: int) -> T:
            return await self._attempt(request)

        give_up = self._give_up if stoppable else _never
        return await self.policy.call(attempt, random=self._random, give_up=give_up)

    async def _attempt(self, request: Callable[[], Awaitable[T]]) -> T:
        async with self.limiter as sent_at:
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
