"""Plain fake parts that unit tests pass in instead of the real ones."""

from __future__ import annotations


class FakeLimiter:
    """Hands out numbered turns and writes down what it is told."""

    def __init__(self, *, cuts: bool = True) -> None:
        self.turns = 0
        self.throttles: list[float | None] = []
        self.successes: list[float | None] = []
        self._cuts = cuts

    async def __aenter__(self) -> float:
        self.turns += 1
        return float(self.turns)

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def throttled(self, sent_at: float | None = None) -> bool:
        self.throttles.append(sent_at)
        return self._cuts

    def succeeded(self, sent_at: float | None = None) -> None:
        self.successes.append(sent_at)
