"""The control routes under ``/_emulator/`` (no auth, not counted): what tests, the demo
and benchmarks use to drive an emulator in another thread or process.

``GET stats``; ``POST config`` (partial settings); ``POST script`` (``session_id``,
``faults``); ``POST reset``; ``POST sessions`` (create: ``count``, ``start_after``,
``finish_after``, ``fate``, ``region``; answers ``ids``); ``GET sessions?since=T`` (the
IDs created at or after emulator time ``T``). A bad request answers 400 with ``error``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:  # the emulator builds its routes: no cycle at run time
    from batch.emulator.server import Emulator

__all__ = ["control_routes"]


def _bad(exc: BaseException | str) -> web.Response:
    return web.json_response({"error": str(exc)}, status=400)


def control_routes(emulator: Emulator) -> list[web.RouteDef]:
    """The routes of ``emulator``'s control API (see the module)."""
    control = _Control(emulator)
    return [
        web.get("/_emulator/stats", control.stats),
        web.post("/_emulator/config", control.config),
        web.post("/_emulator/script", control.script),
        web.post("/_emulator/reset", control.reset),
        web.post("/_emulator/sessions", control.create),
        web.get("/_emulator/sessions", control.sessions),
    ]


class _Control:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.emulator.stats())

    async def config(self, request: web.Request) -> web.Response:
        try:
            settings = self.emulator.configure(**await request.json())
        except (TypeError, ValueError) as exc:
            return _bad(exc)
        return web.json_response(dataclasses.asdict(settings))

    async def script(self, request: web.Request) -> web.Response:
        data = await request.json()
        try:
            self.emulator.script(str(data["session_id"]), list(data["faults"]))
        except (KeyError, TypeError, ValueError) as exc:
            return _bad(exc)
        return web.json_response({"ok": True})

    async def reset(self, request: web.Request) -> web.Response:
        self.emulator.reset()
        return web.json_response({"ok": True})

    async def create(self, request: web.Request) -> web.Response:
        data = await request.json()
        if not isinstance(data, dict):
            return _bad("the body must be a JSON object")
        try:
            ids = self.emulator.create_sessions(int(data.pop("count", 1)), **data)
        except (TypeError, ValueError) as exc:
            return _bad(exc)
        return web.json_response({"ids": ids, "created_at": self.emulator.now()})

    async def sessions(self, request: web.Request) -> web.Response:
        try:
            since = float(request.query.get("since", "-inf"))
        except ValueError:
            return _bad("since must be a number")
        found = self.emulator.sessions_since(since)
        return web.json_response({"now": self.emulator.now(), "sessions": found})
