"""How a run stops: a :class:`Stop` request, and the :class:`Breaker` that makes one.

:meth:`Stop.request` (a signal, a time budget, the breaker) makes workers take no new
session and abandon further retries; what is in flight completes.
"""

from __future__ import annotations

from batch.errors import SessionError, ThrottledError

__all__ = ["Breaker", "Stop"]


class Stop:
    """A request to stop taking new sessions; true once requested, with the first reason.

    ``fetched`` turns true when no call is in flight any more (the report is being
    written): a drain deadline has nothing left to cut short then.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self.fetched = False

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def __bool__(self) -> bool:
        return self.reason is not None


class Breaker:
    """Stops the run when the endpoint fails ``threshold`` calls in a row.

    Throttles and per-session answers show the endpoint is alive and reset the streak;
    server errors, resets and timeouts extend it. An endpoint that is down for everything
    then ends the run early instead of spending every session's attempts.
    """

    def __init__(self, threshold: int, stop: Stop) -> None:
        self.threshold = threshold
        self.streak = 0
        self._stop = stop

    def record(self, error: BaseException | None) -> None:
        if error is None or isinstance(error, ThrottledError | SessionError):
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.threshold and not self._stop:
            code = getattr(error, "code", type(error).__name__)
            self._stop.request(
                f"the endpoint failed {self.streak} calls in a row (last: {code}); "
                "stopping early, check the endpoint and the network"
            )
