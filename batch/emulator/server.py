"""A local Rekognition endpoint for ``GetFaceLivenessSessionResults`` (aiohttp).

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

Control routes under ``/_emulator/`` (no auth, not counted): ``GET stats``, ``POST
config`` (partial settings), ``POST script``, ``POST reset``, ``POST sessions`` (create:
``count``, ``start_after``, ``finish_after``, ``fate``, ``region``; answers ``ids``),
``GET sessions?since=T`` (the IDs created at or after emulator time ``T``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import random
import re
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from aiohttp import web

from batch.emulator import servicequotas
from batch.emulator.lifecycle import FATES, Plan, Sessions, status_at, unit
from batch.emulator.population import Population, write_input
from batch.emulator.quota import Production, Quota
from batch.emulator.timing import Timing
from batch.store.inputs import SESSION_ID_PATTERN

__all__ = ["FAULTS", "OUTCOMES", "Emulator", "EmulatorSettings", "EmulatorThread", "serve"]

T = TypeVar("T")
TARGET = "RekognitionService.GetFaceLivenessSessionResults"
FAULTS = (
    "throttle",
    "server_error",
    "drop",
    "malformed",
    "truncated",
    "empty",
    "slow",
    "not_found",
    "denied",
    "expired",
    # capture faults: ``pass`` answers as usual (a script's "not yet"); ``vanish`` makes
    # the session gone from then on (SessionNotFound, as a deleted session answers);
    # ``bad_bytes``/``bad_audits`` are bodies botocore's parser cannot read (Bytes not
    # base64, AuditImages not a list); ``bad_confidence`` has Confidence 150
    "pass",
    "vanish",
    "bad_bytes",
    "bad_audits",
    "bad_confidence",
)
_BAD_BODIES: dict[str, dict[str, Any]] = {
    "bad_bytes": {"ReferenceImage": {"Bytes": "%%% not base64 %%%"}},
    "bad_audits": {"AuditImages": {"Bytes": "not a list"}},
    "bad_confidence": {"Confidence": 150.0},
}
OUTCOMES = (
    "ok",
    "throttled",
    "server_error",
    "dropped",
    "malformed",
    "truncated",
    "empty",
    "slow",
    "not_found",
    "invalid",
    "denied",
    "unauthenticated",
)
_RATES = ("error_rate", "drop_rate", "malformed_rate", "truncated_rate", "empty_rate", "slow_rate")
_FIXED = ("sessions", "seed")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_ANY_REGION = "*"  # the one bucket of an emulator without regions


def _assign_versions(body: dict[str, Any], versions: dict[str, str] | None) -> None:
    """Report the evidence store's version of each versioned S3 image (if it has said)."""
    if versions is None:
        return
    images = [body.get("ReferenceImage"), *(body.get("AuditImages") or [])]
    for image in images:
        s3 = (image or {}).get("S3Object")
        if s3 and "Version" in s3:
            if s3["Name"] in versions:
                s3["Version"] = versions[s3["Name"]]
            else:
                del s3["Version"]


@dataclass(frozen=True, kw_only=True)
class EmulatorSettings:
    """The emulated account's quota and the faults to inject."""

    sessions: int = 1000
    seed: int = 0
    tps: float | None = None
    burst: float | None = None
    throttle_error: Literal[
        "ThrottlingException", "ProvisionedThroughputExceededException", "mixed"
    ] = "ThrottlingException"
    latency: float = 0.0
    latency_jitter: float = 0.0
    # The service's timing (batch.emulator.timing): the way in before the quota decides,
    # the way back after, processing for successes. Set, it replaces latency(_jitter).
    timing: Timing | None = None
    error_rate: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    truncated_rate: float = 0.0
    empty_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 60.0
    expire_after: float | None = None
    deny_all: bool = False
    # The version IDs the evidence bucket gave the stored images, by object key: a real
    # service reports the version S3 assigned when it wrote the image. Unset: synthetic.
    evidence_versions: dict[str, str] | None = None
    # Time passes (batch.emulator.lifecycle): sessions live this many seconds. None: the
    # timeless emulator, every population session answers its fixed status.
    lifetime: float | None = None
    expire_unfinished: float | None = None  # unfinished sessions EXPIRED after [lifetime/2]
    new_per_second: float = 0.0  # sessions created per second while it runs
    new_start_after: float | None = 5.0  # ... each started this long after creation
    new_finish_after: float | None = 10.0  # ... and finished this long after creation
    background_tps: float = 0.0  # production calls per second on each region's bucket
    # The regions sessions live in (each in one); None: any region answers every session.
    regions: tuple[str, ...] | None = None
    region_tps: dict[str, float] | None = None  # a region's own quota instead of ``tps``

    def __post_init__(self) -> None:
        if self.sessions < 0:
            raise ValueError(f"sessions must not be negative, got {self.sessions!r}")
        for name in ("tps", "burst"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.regions is not None:  # JSON gives a list: keep the frozen settings hashable
            object.__setattr__(self, "regions", tuple(self.regions))
        if isinstance(self.timing, dict):  # JSON gives an object
            object.__setattr__(self, "timing", Timing(**self.timing))
        self._check_time_and_regions()
        for name in (*_RATES, "latency", "latency_jitter", "slow_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)!r}")
        for name in _RATES:
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be a share in [0, 1], got {getattr(self, name)!r}")
        if self.throttle_error not in (
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "mixed",
        ):
            raise ValueError(f"throttle_error is not a throttling error: {self.throttle_error!r}")

    def _check_time_and_regions(self) -> None:
        for name in ("lifetime", "expire_unfinished"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        for name in ("new_per_second", "background_tps", "new_start_after", "new_finish_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
        if self.regions is not None:
            bad = [r for r in self.regions if not _REGION.fullmatch(str(r))]
            if bad or not self.regions:
                raise ValueError(f"regions must be AWS region names, got {list(self.regions)}")
        for region, tps in (self.region_tps or {}).items():
            if not tps > 0:
                raise ValueError(f"region_tps for {region} must be positive, got {tps!r}")

    @property
    def capacity(self) -> float:
        return self.capacity_for(self.tps)

    def capacity_for(self, tps: float | None) -> float:
        if self.burst is not None:
            return self.burst
        return max(1.0, (tps or 0.0) / 10)

    def tps_in(self, region: str) -> float | None:
        """The quota of ``region``: its own if ``region_tps`` names it, else ``tps``."""
        return (self.region_tps or {}).get(region, self.tps)


@dataclass
class Stats:
    requests: int = 0
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    by_session: Counter[str] = dataclasses.field(default_factory=Counter)
    ok_by_session: Counter[str] = dataclasses.field(default_factory=Counter)
    timeline: dict[int, list[int]] = dataclasses.field(default_factory=dict)
    by_region: dict[str, Counter[str]] = dataclasses.field(default_factory=dict)
    production: dict[str, Production] = dataclasses.field(default_factory=dict)
    quota_lookups: int = 0
    first: float | None = None
    last: float | None = None

    def arrived(self, at: float) -> None:
        self.requests += 1
        if self.first is None:
            self.first = at
        self.last = at

    def as_dict(self) -> dict[str, Any]:
        """``requests``; ``outcomes`` (every name in OUTCOMES); per-session request and
        200-OK counts; ``timeline``: [second since reset, ok, throttled] rows;
        ``active_seconds``: from the first to the last request; ``regions``: requests and
        outcomes by the region asked; ``production``: the background calls and how many
        the quota refused, in all and ``by_region``; ``quota_lookups``: Service Quotas
        calls."""
        active = 0.0 if self.first is None or self.last is None else self.last - self.first
        production = self.production.values()
        return {
            "regions": {name: dict(counts) for name, counts in self.by_region.items()},
            "production": {
                "calls": sum(p.calls for p in production),
                "throttled": sum(p.throttled for p in production),
                "by_region": {name: p.as_dict() for name, p in self.production.items()},
            },
            "quota_lookups": self.quota_lookups,
            "requests": self.requests,
            "active_seconds": active,
            "outcomes": {name: self.outcomes[name] for name in OUTCOMES},
            "by_session": dict(self.by_session),
            "ok_by_session": dict(self.ok_by_session),
            "timeline": [[s, *counts] for s, counts in sorted(self.timeline.items())],
        }


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"__type": code, "Message": message}).encode(),
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
        content_type="application/x-amz-json-1.1",
    )


def _ok(body: bytes) -> web.Response:
    return web.Response(
        status=200,
        body=body,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
        content_type="application/x-amz-json-1.1",
    )


_AUTH_PREFIX = "AWS4-HMAC-SHA256 Credential="
_KEY_ERRORS = {
    "DENIED": (400, "AccessDeniedException", "User is not authorized to perform this action"),
    "EXPIRED": (
        400,
        "ExpiredTokenException",
        "The security token included in the request is expired",
    ),
    "INVALID": (
        400,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ),
}


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
        self._stats = Stats()
        self._scripts: dict[str, list[str]] = {}
        self._vanished: set[str] = set()  # sessions a ``vanish`` fault made gone
        self._rng = random.Random(settings.seed)  # noqa: S311  # fault injection, not crypto
        self._quotas: dict[str, Quota] = {}
        self._throttled: set[int] = set()  # requests (by id) the quota refused, in flight
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
        app.router.add_post("/", self._handle)
        app.router.add_get("/_emulator/stats", self._control_stats)
        app.router.add_post("/_emulator/config", self._control_config)
        app.router.add_post("/_emulator/script", self._control_script)
        app.router.add_post("/_emulator/reset", self._control_reset)
        app.router.add_post("/_emulator/sessions", self._control_create)
        app.router.add_get("/_emulator/sessions", self._control_sessions)
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
        fixed = set(changes) & set(_FIXED)
        if fixed:
            raise ValueError(f"cannot change {', '.join(sorted(fixed))} of a running emulator")
        settings = dataclasses.replace(self.settings, **changes)
        now = self.now()
        self._spawn(now)  # sessions due at the old rate are created before it changes
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

    def stats(self) -> dict[str, Any]:
        now = self.now()
        for quota in self._quotas.values():
            quota.advance(now)
        self._spawn(now)
        return {**self._stats.as_dict(), "now": now, "sessions_created": len(self._sessions)}

    def reset(self) -> None:
        self.settings = self.initial
        self._stats = Stats()
        self._scripts.clear()
        self._vanished.clear()
        self._rng = random.Random(self.initial.seed)  # noqa: S311  # fault injection
        self._started = self._read_clock()
        self._sessions = Sessions(self.initial.seed)
        self._spawn_origin, self._spawned = 0.0, 0
        self._new_quotas()

    def _new_quotas(self) -> None:
        self._quotas = {}
        for region in self.settings.regions or (_ANY_REGION,):
            self._quota(region)

    def _quota(self, region: str) -> Quota:
        """The bucket a request asked in ``region`` draws from (made on first use)."""
        s = self.settings
        key = region if s.regions is not None else _ANY_REGION
        quota = self._quotas.get(key)
        if quota is None:
            tps = s.tps_in(key)
            quota = self._quotas[key] = Quota(
                tps,
                s.capacity_for(tps),
                production_tps=s.background_tps,
                origin=self.now(),
                production=self._stats.production.setdefault(key, Production()),
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

    def _spawn(self, now: float) -> None:
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
        self._spawn(self.now())
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

    def _answer(self, session_id: str, region: str | None) -> dict[str, Any] | None:
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

    # --- the API ------------------------------------------------------------------

    def _count(
        self, stats: Stats, outcome: str, session_id: str | None = None, region: str = "?"
    ) -> None:
        """Count into ``stats``: the Stats of the request's arrival, not a later reset's."""
        stats.outcomes[outcome] += 1
        stats.by_region.setdefault(region, Counter())[outcome] += 1
        if outcome in ("ok", "throttled"):
            second = int(self.now())
            row = stats.timeline.setdefault(second, [0, 0])
            row[0 if outcome == "ok" else 1] += 1
        if outcome == "ok" and session_id is not None:
            stats.ok_by_session[session_id] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        stats.arrived(self.now())
        s = self.settings
        raw = await request.read()
        if s.timing is not None:
            leg = s.timing.leg(self._rng)
            await asyncio.sleep(leg.way_in)
            response = await self._handle_in_time(stats, request, raw)
            throttled = id(request) in self._throttled
            self._throttled.discard(id(request))
            await asyncio.sleep(leg.back_throttled if throttled else leg.back)
            return response
        if s.latency or s.latency_jitter:
            await asyncio.sleep(s.latency + self._rng.uniform(0, s.latency_jitter))
        return await self._handle_in_time(stats, request, raw)

    async def _handle_in_time(
        self, stats: Stats, request: web.Request, raw: bytes
    ) -> web.StreamResponse:
        s = self.settings
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(_AUTH_PREFIX):
            self._count(stats, "unauthenticated")
            return _error(
                400, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        access_key, _, scope = auth[len(_AUTH_PREFIX) :].partition("/")
        region = _scope_region(scope)
        stats.by_region.setdefault(region, Counter())["requests"] += 1
        for prefix, (status, code, message) in _KEY_ERRORS.items():
            if access_key.startswith(prefix):
                self._count(stats, "denied", region=region)
                return _error(status, code, message)
        if s.deny_all:
            self._count(stats, "denied", region=region)
            return _error(400, *_KEY_ERRORS["DENIED"][1:])
        target = request.headers.get("X-Amz-Target")
        if target == servicequotas.TARGET:
            return self._service_quotas(stats, raw, region)
        if target != TARGET:
            self._count(stats, "invalid", region=region)
            return _error(400, "UnknownOperationException", "Unknown operation")
        return await self._rekognition(stats, request, raw, region)

    async def _rekognition(
        self, stats: Stats, request: web.Request, raw: bytes, region: str
    ) -> web.StreamResponse:
        """Steps 3 to 5 of a GetFaceLivenessSessionResults call."""
        now = self.now()
        self._spawn(now)
        session_id = _session_id(raw)
        if session_id is not None:
            stats.by_session[session_id] += 1
        script = self._scripts.get(session_id or "")
        fault = script.pop(0) if script else None
        if fault == "vanish":
            self._vanished.add(session_id or "")
            fault = "not_found"
        if fault == "pass" or (fault is None and session_id in self._vanished):
            fault = "not_found" if session_id in self._vanished else None
        if fault is None and not self._quota(region).take(now):
            fault = "throttle"
        if fault is None:
            fault = self._random_fault()
        if fault == "throttle" and self.settings.timing is not None:
            self._throttled.add(id(request))  # answered after the round trip only
        if fault is not None:
            return await self._fault(stats, fault, request, session_id, region)
        if session_id is None or not SESSION_ID_PATTERN.fullmatch(session_id):
            self._count(stats, "invalid", region=region)
            return _error(400, "InvalidParameterException", "SessionId must match the UUID pattern")
        body = self._answer(session_id, region)
        if body is None:
            self._count(stats, "not_found", region=region)
            return _error(400, "SessionNotFoundException", f"Session {session_id} not found")
        _assign_versions(body, self.settings.evidence_versions)
        self._count(stats, "ok", session_id, region)
        return _ok(json.dumps(body).encode())

    def _service_quotas(self, stats: Stats, raw: bytes, region: str) -> web.Response:
        stats.quota_lookups += 1
        try:
            request = json.loads(raw)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return _error(400, "SerializationException", "The request body is not a JSON object")
        tps = self.settings.tps_in(region if self.settings.regions is not None else "")
        status, body = servicequotas.list_service_quotas(request, region, tps)
        return web.Response(
            status=status,
            body=json.dumps(body).encode(),
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
            content_type="application/x-amz-json-1.1",
        )

    def _random_fault(self) -> str | None:
        s = self.settings
        for fault, share in (
            ("drop", s.drop_rate),
            ("slow", s.slow_rate),
            ("server_error", s.error_rate),
            ("malformed", s.malformed_rate),
            ("truncated", s.truncated_rate),
            ("empty", s.empty_rate),
        ):
            if share and self._rng.random() < share:
                return fault
        return None

    async def _fault(  # noqa: PLR0911  # long: one answer per fault kind
        self,
        stats: Stats,
        fault: str,
        request: web.Request,
        session_id: str | None,
        region: str,
    ) -> web.StreamResponse:
        if fault == "throttle":
            self._count(stats, "throttled", region=region)
            code = self.settings.throttle_error
            if code == "mixed":
                code = self._rng.choice(
                    ["ThrottlingException", "ProvisionedThroughputExceededException"]
                )
            status = 500 if code == "ThrottlingException" else 400
            return _error(status, code, "Rate exceeded")
        if fault == "server_error":
            self._count(stats, "server_error", region=region)
            return _error(500, "InternalServerError", "Internal server error")
        if fault == "not_found":
            self._count(stats, "not_found", region=region)
            return _error(400, "SessionNotFoundException", f"Session {session_id} not found")
        if fault in ("denied", "expired"):
            self._count(stats, "denied", region=region)
            return _error(*_KEY_ERRORS["DENIED" if fault == "denied" else "EXPIRED"])
        if fault == "slow":
            self._count(stats, "slow", region=region)
            await asyncio.sleep(self.settings.slow_seconds)
            return _ok(json.dumps(self._answer(session_id or "", region) or {}).encode())
        if fault == "malformed":
            self._count(stats, "malformed", region=region)
            return _ok(b'{"SessionId": "' + (session_id or "").encode() + b'", "Status": ')
        if fault in _BAD_BODIES:
            self._count(stats, "malformed", region=region)
            answer = self._answer(session_id or "", region) or {"SessionId": session_id}
            return _ok(json.dumps(answer | _BAD_BODIES[fault]).encode())
        if fault == "empty":
            self._count(stats, "empty", region=region)
            return _ok(b"{}")
        if fault == "truncated":
            self._count(stats, "truncated", region=region)
            body = json.dumps(self._answer(session_id or "", region) or {}).encode()
            response = web.StreamResponse(status=200)
            response.content_type = "application/x-amz-json-1.1"
            response.content_length = len(body) + 100
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            _drop(request)
            return response
        self._count(stats, "dropped", region=region)
        _drop(request)
        return web.Response(status=500)  # never sent: the connection is gone

    # --- control routes -------------------------------------------------------------

    async def _control_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _control_config(self, request: web.Request) -> web.Response:
        try:
            settings = self.configure(**await request.json())
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(dataclasses.asdict(settings))

    async def _control_script(self, request: web.Request) -> web.Response:
        data = await request.json()
        try:
            self.script(str(data["session_id"]), list(data["faults"]))
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_create(self, request: web.Request) -> web.Response:
        data = await request.json()
        if not isinstance(data, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            ids = self.create_sessions(int(data.pop("count", 1)), **data)
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ids": ids, "created_at": self.now()})

    async def _control_sessions(self, request: web.Request) -> web.Response:
        try:
            since = float(request.query.get("since", "-inf"))
        except ValueError:
            return web.json_response({"error": "since must be a number"}, status=400)
        return web.json_response({"now": self.now(), "sessions": self.sessions_since(since)})


def _session_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("SessionId") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _scope_region(scope: str) -> str:
    """The region of a SigV4 credential scope ``DATE/REGION/SERVICE/aws4_request``."""
    parts = scope.split("/")
    return parts[1] if len(parts) > 2 and parts[1] else "?"


def _drop(request: web.Request) -> None:
    """Close the connection without (the rest of) an answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()


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
