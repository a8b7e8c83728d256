"""A local Rekognition endpoint for ``GetFaceLivenessSessionResults`` (aiohttp).

It speaks AWS JSON 1.1 as botocore does: ``POST /`` with ``X-Amz-Target:
RekognitionService.GetFaceLivenessSessionResults``; errors are ``{"__type", "Message"}``
bodies with the reference's HTTP statuses. Each request goes through, in order:

1. authentication: a SigV4 ``Authorization`` header is required (the signature is not
   checked); access keys starting ``DENIED``, ``EXPIRED`` or ``INVALID`` answer
   AccessDenied, ExpiredToken and UnrecognizedClient; ``deny_all`` denies everyone;
2. the operation (``UnknownOperationException`` otherwise);
3. the quota: a token bucket (``tps`` refill, ``burst`` capacity, on the loop clock);
   an empty bucket answers ``ThrottlingException`` (HTTP 500) or
   ``ProvisionedThroughputExceededException`` (HTTP 400) and costs no token;
4. faults: first a session's scripted ones, then random ones drawn from a seeded RNG
   (drop, slow, 500, malformed JSON, truncated body, empty ``{}``);
5. the answer: ``InvalidParameterException``, ``SessionNotFoundException`` or the
   population's body (see :mod:`batch.emulator.population`).

Control routes under ``/_emulator/`` (no auth, not counted): ``GET stats``, ``POST
config`` (partial settings), ``POST script``, ``POST reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from aiohttp import web

from batch.emulator.population import Population, write_input
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
)
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

    def __post_init__(self) -> None:
        if self.sessions < 0:
            raise ValueError(f"sessions must not be negative, got {self.sessions!r}")
        for name in ("tps", "burst"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
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

    @property
    def capacity(self) -> float:
        if self.burst is not None:
            return self.burst
        return max(1.0, (self.tps or 0.0) / 10)


class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; a request takes one or is refused."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass
class Stats:
    requests: int = 0
    outcomes: Counter[str] = dataclasses.field(default_factory=Counter)
    by_session: Counter[str] = dataclasses.field(default_factory=Counter)
    ok_by_session: Counter[str] = dataclasses.field(default_factory=Counter)
    timeline: dict[int, list[int]] = dataclasses.field(default_factory=dict)
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
        ``active_seconds``: from the first to the last request."""
        active = 0.0 if self.first is None or self.last is None else self.last - self.first
        return {
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
    """The server; ``async with Emulator(settings) as emu:`` serves on ``emu.url``."""

    def __init__(self, settings: EmulatorSettings, *, host: str = "127.0.0.1", port: int = 0):
        self.initial = settings
        self.settings = settings
        self.population = Population(settings.seed, settings.sessions)
        self.host = host
        self.port = port
        self._stats = Stats()
        self._scripts: dict[str, list[str]] = {}
        self._rng = random.Random(settings.seed)  # noqa: S311  # fault injection, not crypto
        self._bucket: TokenBucket | None = None
        self._runner: web.AppRunner | None = None
        self._started = 0.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- life cycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/", self._handle)
        app.router.add_get("/_emulator/stats", self._control_stats)
        app.router.add_post("/_emulator/config", self._control_config)
        app.router.add_post("/_emulator/script", self._control_script)
        app.router.add_post("/_emulator/reset", self._control_reset)
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
        self.settings = dataclasses.replace(self.settings, **changes)
        if {"tps", "burst"} & set(changes):
            self._new_bucket()
        return self.settings

    def script(self, session_id: str, faults: Sequence[str]) -> None:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
        self._scripts.setdefault(session_id, []).extend(faults)

    def stats(self) -> dict[str, Any]:
        return self._stats.as_dict()

    def reset(self) -> None:
        self.settings = self.initial
        self._stats = Stats()
        self._scripts.clear()
        self._rng = random.Random(self.initial.seed)  # noqa: S311  # fault injection
        self._started = asyncio.get_running_loop().time()
        self._new_bucket()

    def _new_bucket(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        self._bucket = None if s.tps is None else TokenBucket(s.tps, s.capacity, loop.time)

    # --- the API ------------------------------------------------------------------

    def _count(self, stats: Stats, outcome: str, session_id: str | None = None) -> None:
        """Count into ``stats``: the Stats of the request's arrival, not a later reset's."""
        stats.outcomes[outcome] += 1
        if outcome in ("ok", "throttled"):
            second = int(asyncio.get_running_loop().time() - self._started)
            row = stats.timeline.setdefault(second, [0, 0])
            row[0 if outcome == "ok" else 1] += 1
        if outcome == "ok" and session_id is not None:
            stats.ok_by_session[session_id] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:  # noqa: PLR0911  # one answer per step
        stats = self._stats
        stats.arrived(asyncio.get_running_loop().time() - self._started)
        s = self.settings
        raw = await request.read()
        if s.latency or s.latency_jitter:
            await asyncio.sleep(s.latency + self._rng.uniform(0, s.latency_jitter))
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(_AUTH_PREFIX):
            self._count(stats, "unauthenticated")
            return _error(
                400, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        access_key = auth[len(_AUTH_PREFIX) :].split("/", 1)[0]
        for prefix, (status, code, message) in _KEY_ERRORS.items():
            if access_key.startswith(prefix):
                self._count(stats, "denied")
                return _error(status, code, message)
        if s.deny_all:
            self._count(stats, "denied")
            return _error(400, *_KEY_ERRORS["DENIED"][1:])
        if request.headers.get("X-Amz-Target") != TARGET:
            self._count(stats, "invalid")
            return _error(400, "UnknownOperationException", "Unknown operation")
        session_id = _session_id(raw)
        if session_id is not None:
            stats.by_session[session_id] += 1
        script = self._scripts.get(session_id or "")
        fault = script.pop(0) if script else None
        if fault is None and self._bucket is not None and not self._bucket.take():
            fault = "throttle"
        if fault is None:
            fault = self._random_fault()
        if fault is not None:
            return await self._fault(stats, fault, request, session_id)
        if session_id is None or not SESSION_ID_PATTERN.fullmatch(session_id):
            self._count(stats, "invalid")
            return _error(400, "InvalidParameterException", "SessionId must match the UUID pattern")
        body = self.population.response(session_id, expire_after=s.expire_after)
        if body is None:
            self._count(stats, "not_found")
            return _error(400, "SessionNotFoundException", f"Session {session_id} not found")
        _assign_versions(body, s.evidence_versions)
        self._count(stats, "ok", session_id)
        return _ok(json.dumps(body).encode())

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

    async def _fault(  # noqa: PLR0911  # one answer per fault kind
        self, stats: Stats, fault: str, request: web.Request, session_id: str | None
    ) -> web.StreamResponse:
        if fault == "throttle":
            self._count(stats, "throttled")
            code = self.settings.throttle_error
            if code == "mixed":
                code = self._rng.choice(
                    ["ThrottlingException", "ProvisionedThroughputExceededException"]
                )
            status = 500 if code == "ThrottlingException" else 400
            return _error(status, code, "Rate exceeded")
        if fault == "server_error":
            self._count(stats, "server_error")
            return _error(500, "InternalServerError", "Internal server error")
        if fault == "not_found":
            self._count(stats, "not_found")
            return _error(400, "SessionNotFoundException", f"Session {session_id} not found")
        if fault in ("denied", "expired"):
            self._count(stats, "denied")
            return _error(*_KEY_ERRORS["DENIED" if fault == "denied" else "EXPIRED"])
        if fault == "slow":
            self._count(stats, "slow")
            await asyncio.sleep(self.settings.slow_seconds)
            return _ok(json.dumps(self.population.response(session_id or "") or {}).encode())
        if fault == "malformed":
            self._count(stats, "malformed")
            return _ok(b'{"SessionId": "' + (session_id or "").encode() + b'", "Status": ')
        if fault == "empty":
            self._count(stats, "empty")
            return _ok(b"{}")
        if fault == "truncated":
            self._count(stats, "truncated")
            body = json.dumps(self.population.response(session_id or "") or {}).encode()
            response = web.StreamResponse(status=200)
            response.content_type = "application/x-amz-json-1.1"
            response.content_length = len(body) + 100
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            _drop(request)
            return response
        self._count(stats, "dropped")
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


def _session_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("SessionId") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _drop(request: web.Request) -> None:
    """Close the connection without (the rest of) an answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()


class EmulatorThread:
    """An :class:`Emulator` on its own loop in a daemon thread, for synchronous callers."""

    def __init__(self, settings: EmulatorSettings, *, host: str = "127.0.0.1", port: int = 0):
        self._settings = settings
        self._host = host
        self._port = port
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
        async with Emulator(self._settings, host=self._host, port=self._port) as emulator:
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
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or SIGINT/SIGTERM: the ``liveness-audit emulator`` command."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    async with Emulator(settings, host=host, port=port) as emulator:
        if write_input_path is not None:
            write_input(write_input_path, emulator.population.ids())
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
