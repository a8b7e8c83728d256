"""A local Rekognition endpoint for ``GetFaceLivenessSessionResults`` (aiohttp):
:class:`Emulator`, the emulated account (its sessions, quotas, scripts and clock) served
on loopback, and :func:`serve`, the ``liveness-audit emulator`` command.

The emulator is a package of small modules: ``settings`` (:class:`EmulatorSettings`),
``stats`` (what is counted), ``faults`` (the faults table), ``operations`` (requests
dispatched by ``X-Amz-Target``), ``control`` (the ``/_emulator/`` routes), ``thread``
(:class:`~batch.emulator.thread.EmulatorThread` for synchronous callers), beside
``population``, ``lifecycle``, ``quota``, ``timing`` and ``servicequotas``.

It speaks AWS JSON 1.1 as botocore does: ``POST /`` with ``X-Amz-Target:
RekognitionService.GetFaceLivenessSessionResults``; errors are ``{"__type", "Message"}``
bodies with the reference's HTTP statuses. Each request goes through, in order:

1. authentication: a SigV4 ``Authorization`` header is required (the signature is not
   checked); access keys starting ``DENIED``, ``EXPIRED`` or ``INVALID`` answer
   AccessDenied, ExpiredToken and UnrecognizedClient; ``deny_all`` denies everyone;
2. the operation (``UnknownOperationException`` otherwise);
   Service Quotas' ``ListServiceQuotas`` is answered here too
   (:mod:`batch.emulator.servicequotas`), outside the quota;
3. the quota: a token bucket (``tps`` refill, ``burst`` capacity, on the emulator's
   clock) per region when ``regions`` is set (the region is the SigV4 credential
   scope's), else one for all, with ``background_tps`` "production" calls drawing from
   it too (:mod:`batch.emulator.quota`); an empty bucket answers ``ThrottlingException``
   (HTTP 500) or ``ProvisionedThroughputExceededException`` (HTTP 400), costs no token;
4. faults: first a session's scripted ones, then random ones drawn from a seeded RNG
   (drop, slow, 500, malformed JSON, truncated body, empty ``{}``);
5. the answer: ``InvalidParameterException``, ``SessionNotFoundException`` (unknown, gone,
   or asked in another region than the session's) or the session's body (see
   :mod:`batch.emulator.population`); with a ``lifetime`` the status follows the
   session's life (:mod:`batch.emulator.lifecycle`), else the population's is fixed.

Sessions can be created while it runs (``create_sessions``, ``new_per_second``). The
clock is ``clock`` (default: the loop's), read as seconds since the last reset.

Control routes under ``/_emulator/`` (no auth, not counted): :mod:`batch.emulator.control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from batch.emulator.control import control_routes
from batch.emulator.faults import FAULTS
from batch.emulator.lifecycle import FATES, Plan, Sessions, status_at, unit
from batch.emulator.operations import Operations
from batch.emulator.population import Population, write_input
from batch.emulator.quota import Production, Quota
from batch.emulator.settings import ANY_REGION, FIXED, EmulatorSettings
from batch.emulator.stats import Stats

__all__ = ["Emulator", "serve"]


class Emulator:
    """The server; ``async with Emulator(settings) as emu:`` serves on ``emu.url``.

    ``clock`` (default: the event loop's) is read for the quota, the timeline and the
    sessions' lives; a test passes a fake one and moves it instead of sleeping.
    """

    def __init__(
        self,
        settings: EmulatorSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] | None = None,
    ):
        self.initial = settings
        self.settings = settings
        self.population = Population(settings.seed, settings.sessions)
        self.host = host
        self.port = port
        self._clock = clock
        self.counts = Stats()  # the requests since the last reset (operations count here)
        self._scripts: dict[str, list[str]] = {}
        self._vanished: set[str] = set()  # sessions a ``vanish`` fault made gone
        self.rng = random.Random(settings.seed)  # noqa: S311  # fault injection, not crypto
        self._quotas: dict[str, Quota] = {}
        self._sessions = Sessions(settings.seed)
        self._spawn_origin = 0.0  # new_per_second creates from here ...
        self._spawned = 0  # ... and has created this many since
        self._runner: web.AppRunner | None = None
        self._started = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def now(self) -> float:
        """Emulator time: seconds since the last reset, on the emulator's clock."""
        return self._read_clock() - self._started

    def _read_clock(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    # --- life cycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/", Operations(self).handle)
        app.add_routes(control_routes(self))
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port nowhere else
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        self.reset()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- control ------------------------------------------------------------------

    def configure(self, **changes: Any) -> EmulatorSettings:
        fixed = set(changes) & set(FIXED)
        if fixed:
            raise ValueError(f"cannot change {', '.join(sorted(fixed))} of a running emulator")
        settings = dataclasses.replace(self.settings, **changes)
        now = self.now()
        self.spawn(now)  # sessions due at the old rate are created before it changes
        self.settings = settings
        if "new_per_second" in changes:
            self._spawn_origin, self._spawned = now, 0
        if {"tps", "burst", "background_tps", "regions", "region_tps"} & set(changes):
            for quota in self._quotas.values():
                quota.advance(now)  # production calls due under the old quota
            self._new_quotas()
        return self.settings

    def script(self, session_id: str, faults: Sequence[str]) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
        self._scripts.setdefault(session_id, []).extend(faults)

    def scripted(self, session_id: str | None) -> str | None:
        """The fault a request for ``session_id`` gets from its script (popped), or the
        ``not_found`` of a session a ``vanish`` made gone; None: no scripted fault."""
        script = self._scripts.get(session_id or "")
        fault = script.pop(0) if script else None
        if fault == "vanish":
            self._vanished.add(session_id or "")
            fault = "not_found"
        if fault == "pass" or (fault is None and session_id in self._vanished):
            fault = "not_found" if session_id in self._vanished else None
        return fault

    def stats(self) -> dict[str, Any]:
        now = self.now()
        for quota in self._quotas.values():
            quota.advance(now)
        self.spawn(now)
        return {**self.counts.as_dict(), "now": now, "sessions_created": len(self._sessions)}

    def reset(self) -> None:
        self.settings = self.initial
        self.counts = Stats()  # the requests since the last reset (operations count here)
        self._scripts.clear()
        self._vanished.clear()
        self.rng = random.Random(self.initial.seed)  # noqa: S311  # fault injection
        self._started = self._read_clock()
        self._sessions = Sessions(self.initial.seed)
        self._spawn_origin, self._spawned = 0.0, 0
        self._new_quotas()

    def _new_quotas(self) -> None:
        self._quotas = {}
        for region in self.settings.regions or (ANY_REGION,):
            self.quota(region)

    def quota(self, region: str) -> Quota:
        """The bucket a request asked in ``region`` draws from (made on first use)."""
        s = self.settings
        key = region if s.regions is not None else ANY_REGION
        quota = self._quotas.get(key)
        if quota is None:
            tps = s.tps_in(key)
            quota = self._quotas[key] = Quota(
                tps,
                s.capacity_for(tps),
                production_tps=s.background_tps,
                origin=self.now(),
                production=self.counts.production.setdefault(key, Production()),
            )
        return quota

    # --- sessions created while it runs --------------------------------------------

    def create_sessions(
        self,
        count: int,
        *,
        start_after: float | None = 5.0,
        finish_after: float | None = 10.0,
        fate: str | None = None,
        region: str | None = None,
    ) -> list[str]:
        """Create ``count`` sessions now: started ``start_after`` s later (None: never),
        finished ``finish_after`` s after creation with ``fate`` (``SUCCEEDED``/``FAILED``;
        None: drawn, 80% SUCCEEDED; ``EXPIRED``: never finishes), living in ``region``
        (None: one of ``regions`` drawn per session). Returns the new IDs."""
        if not 0 <= count <= 100_000:
            raise ValueError(f"count must be in [0, 100000], got {count!r}")
        if fate is not None and fate not in FATES:
            raise ValueError(f"fate must be one of {', '.join(FATES)}, got {fate!r}")
        return [
            self._create(self.now(), start_after, finish_after, fate, region) for _ in range(count)
        ]

    def _create(
        self,
        at: float,
        start_after: float | None,
        finish_after: float | None,
        fate: str | None,
        region: str | None,
    ) -> str:
        session_id = self._sessions.new_id()
        if fate is None:
            drawn = unit("fate", self.settings.seed, session_id) < 0.8
            fate = "SUCCEEDED" if drawn else "FAILED"
        finishes = fate != "EXPIRED" and None not in (start_after, finish_after)
        plan = Plan(
            created_at=at,
            start_after=start_after,
            finish_after=finish_after if finishes else None,
            outcome=fate if finishes else None,  # type: ignore[arg-type]  # FATES checked
            region=region,
        )
        self._sessions.add(session_id, plan)
        return session_id

    def spawn(self, now: float) -> None:
        """Create the sessions ``new_per_second`` has made due by ``now``, each at its time."""
        s = self.settings
        if not s.new_per_second:
            return
        due = math.floor((now - self._spawn_origin) * s.new_per_second)
        for k in range(self._spawned, due):
            at = self._spawn_origin + (k + 1) / s.new_per_second
            self._create(at, s.new_start_after, s.new_finish_after, None, None)
        self._spawned = max(self._spawned, due)

    def sessions_since(self, since: float = -math.inf) -> list[dict[str, Any]]:
        """The sessions created at or after emulator time ``since``, oldest first, as
        ``{"id", "created_at", "region"}``; population sessions too when time passes."""
        self.spawn(self.now())
        rows = [(sid, plan) for sid, plan in self._sessions if plan.created_at >= since]
        lifetime = self.settings.lifetime
        if lifetime is not None:
            for sid in self.population.ids():
                plan = self.population.plan(sid, lifetime)
                if plan is not None and plan.created_at >= since:
                    rows.append((sid, plan))
        rows.sort(key=lambda row: row[1].created_at)
        return [
            {"id": sid, "created_at": plan.created_at, "region": self._home(sid, plan)}
            for sid, plan in rows
        ]

    def _home(self, session_id: str, plan: Plan | None) -> str | None:
        regions = self.settings.regions
        if plan is not None and plan.region is not None:
            return plan.region
        return None if regions is None else self.population.region(session_id, regions)

    def answer(self, session_id: str, region: str | None) -> dict[str, Any] | None:
        """The session's body as asked now in ``region`` (None: SessionNotFound)."""
        s = self.settings
        plan = self._sessions.get(session_id)
        if plan is None and s.lifetime is not None:
            plan = self.population.plan(session_id, s.lifetime)
        if plan is None and session_id not in self.population:
            return None
        home = self._home(session_id, plan)
        if home is not None and region != home:
            return None
        if plan is None:  # timeless: the population's fixed answer, as always
            return self.population.response(session_id, expire_after=s.expire_after)
        status = status_at(plan, self.now(), s.lifetime, s.expire_unfinished)
        return None if status is None else self.population.body(session_id, status)


async def serve(
    settings: EmulatorSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    url_file: Path | None = None,
    write_input_path: Path | None = None,
    reconcile_columns: bool = False,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or SIGINT/SIGTERM: the ``liveness-audit emulator`` command."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    async with Emulator(settings, host=host, port=port) as emulator:
        if write_input_path is not None:
            write_input(
                write_input_path,
                emulator.population.ids(),
                reconcile_with=emulator.population if reconcile_columns else None,
            )
        with _signals(loop, stop):  # before saying "listening": a quick SIGTERM is handled
            if url_file is not None:
                tmp = url_file.with_name(f".{url_file.name}.tmp")
                tmp.write_text(emulator.url + "\n")
                tmp.replace(url_file)
            quota = f"quota {settings.tps:g} tps" if settings.tps else "no quota"
            print(  # the command's one line of output
                f"emulator listening on {emulator.url} "
                f"({settings.sessions} sessions, seed {settings.seed}, {quota})",
                flush=True,
            )
            await stop.wait()


@contextlib.contextmanager
def _signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
