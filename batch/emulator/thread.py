"""An :class:`~batch.emulator.server.Emulator` on its own event loop in a daemon thread.

For synchronous callers (pytest fixtures, scripts): each method runs on the emulator's
loop and waits for its result, so a test reads and drives the emulator as it serves.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, Self, TypeVar

from batch.emulator.population import Population
from batch.emulator.server import Emulator
from batch.emulator.settings import EmulatorSettings

__all__ = ["EmulatorThread"]

T = TypeVar("T")


class EmulatorThread:
    """An :class:`Emulator` on its own loop in a daemon thread, for synchronous callers."""

    def __init__(
        self,
        settings: EmulatorSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] | None = None,
    ):
        self._settings = settings
        self._host = host
        self._port = port
        self._clock = clock
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._emulator: Emulator | None = None
        self._error: BaseException | None = None

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._main, name="emulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001  # handed to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        async with Emulator(
            self._settings, host=self._host, port=self._port, clock=self._clock
        ) as emulator:
            self._emulator = emulator
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            self._ready.set()
            await self._stopping.wait()

    def _call(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=30)

    @property
    def emulator(self) -> Emulator:
        assert self._emulator is not None, "start() the emulator first"
        return self._emulator

    @property
    def url(self) -> str:
        return self.emulator.url

    @property
    def population(self) -> Population:
        return self.emulator.population

    def configure(self, **changes: Any) -> EmulatorSettings:
        return self._call(lambda: self.emulator.configure(**changes))

    def script(self, session_id: str, faults: Sequence[str]) -> None:
        self._call(lambda: self.emulator.script(session_id, faults))

    def stats(self) -> dict[str, Any]:
        return self._call(self.emulator.stats)

    def reset(self) -> None:
        self._call(self.emulator.reset)

    def now(self) -> float:
        return self._call(self.emulator.now)

    def create_sessions(
        self,
        count: int,
        *,
        start_after: float | None = 5.0,
        finish_after: float | None = 10.0,
        fate: str | None = None,
        region: str | None = None,
    ) -> list[str]:
        """See :meth:`Emulator.create_sessions`."""
        return self._call(
            lambda: self.emulator.create_sessions(
                count, start_after=start_after, finish_after=finish_after, fate=fate, region=region
            )
        )

    def sessions_since(self, since: float = -math.inf) -> list[dict[str, Any]]:
        return self._call(lambda: self.emulator.sessions_since(since))

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
