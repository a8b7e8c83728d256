"""How a run stops: a :class:`Stop` request, what makes one, and the deadline after it.

:meth:`Stop.request` (a signal, the time budget, the :class:`Breaker`) makes workers take
no new session and abandon further retries; what is in flight completes.
:func:`orderly_stops` turns SIGINT/SIGTERM and the time budget into a stop request, gives
in-flight calls ``drain_timeout`` seconds, then cancels the run's task (keeping what is
done); a second signal cancels at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from batch.durations import format_duration
from batch.errors import AccessError, ConflictError, SessionError, ThrottledError
from batch.logs import LOGGER, event

__all__ = ["Breaker", "Stop", "orderly_stops"]

log = logging.getLogger(LOGGER)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# answers that show the endpoint is up (a refusal of one object, a lost race): no outage
_ALIVE = (ThrottledError, SessionError, AccessError, ConflictError)


class Stop:
    """A request to stop taking new sessions; true once requested, with the first reason.

    ``fetched`` turns true when no call is in flight any more (the report is being
    written): a drain deadline has nothing left to cut short then.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.fetched = False
        self.requested = asyncio.Event()  # for waiters that must wake on a stop

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.requested.set()

    def __bool__(self) -> bool:
        return self.reason is not None


class Breaker:
    """Stops the run when an endpoint (``name``) fails ``threshold`` calls in a row.

    Throttles, per-session answers, refusals and conflicts show the endpoint is alive and
    reset the streak; server errors, resets and timeouts extend it. An endpoint that is
    down for everything then ends the run early instead of spending every session's
    attempts. A run has one for Rekognition and one for S3 (the evidence HEADs).
    """

    def __init__(self, threshold: int, stop: Stop, *, name: str = "the endpoint") -> None:
        self.threshold = threshold
        self.name = name
        self.streak = 0
        self._stop = stop

    def record(self, error: BaseException | None) -> None:
        """Hear one attempt (``None``: it succeeded); the stop is requested at the threshold."""
        if error is None or isinstance(error, _ALIVE):
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.threshold and not self._stop:
            code = getattr(error, "code", type(error).__name__)
            self._stop.request(
                f"{self.name} failed {self.streak} calls in a row (last: {code}); "
                "stopping early, check the endpoint and the network"
            )


@asynccontextmanager
async def orderly_stops(
    stop: Stop, *, drain_timeout: float, budget: float | None = None
) -> AsyncIterator[Stop]:
    """For the life of the block: signals and the ``budget`` request ``stop``, then a deadline.

    The first signal (or the budget running out) requests the stop and, ``drain_timeout``
    seconds later, cancels the current task if calls are still in flight
    (``stop.fetched`` false); a second signal cancels it at once.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    timers: list[asyncio.TimerHandle] = []

    def begin_stop(reason: str) -> None:
        if stop:
            log.warning(
                "%s again: stopping at once; finished sessions are kept",
                reason,
                extra=event("stop", reason=f"{reason} again"),
            )
            task.cancel()
            return
        stop.request(reason)
        log.warning(
            "%s: stopping: no new sessions, in-flight ones finish (up to %ss); "
            "a second signal stops at once",
            reason,
            f"{drain_timeout:g}",
            extra=event("stop", reason=reason),
        )
        timers.append(loop.call_later(drain_timeout, drain_deadline))

    def drain_deadline() -> None:
        if not stop.fetched:  # calls still in flight: cut them short, keep what is done
            task.cancel()

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, begin_stop, sig.name)
    if budget is not None:
        used_up = f"time budget of {format_duration(budget)} used up"
        timers.append(loop.call_later(budget, begin_stop, used_up))
    try:
        yield stop
    finally:
        for timer in timers:
            timer.cancel()
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
