"""The API of the emulator: a request authenticated, dispatched by ``X-Amz-Target``.

Each request, in order (see :mod:`batch.emulator.server` for the whole story):
authentication (a SigV4 header; key prefixes that fail, ``deny_all``); the operation,
looked up in :attr:`Operations.targets` (``UnknownOperationException`` otherwise);
for ``GetFaceLivenessSessionResults`` the quota, the faults
(:mod:`batch.emulator.faults`) and the session's answer; Service Quotas'
``ListServiceQuotas`` outside the quota. With ``timing`` set, the way in and back are
slept around it. A new AWS call is an entry in ``targets`` and a method here.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from batch.emulator import servicequotas
from batch.emulator.faults import answer_fault, random_fault
from batch.emulator.responses import KEY_ERRORS, answer, error, ok
from batch.emulator.stats import Stats
from batch.store.inputs import SESSION_ID_PATTERN

if TYPE_CHECKING:  # the emulator builds its operations: no cycle at run time
    from batch.emulator.server import Emulator

__all__ = ["TARGET", "Operations"]

TARGET = "RekognitionService.GetFaceLivenessSessionResults"
_AUTH_PREFIX = "AWS4-HMAC-SHA256 Credential="

Handler = Callable[[Stats, web.Request, bytes, str], Awaitable[web.StreamResponse]]


class Operations:
    """The handler of ``POST /``: the API calls of the emulated account (see the module);
    it reads the account's settings, clock, quotas, scripts and sessions."""

    def __init__(self, account: Emulator) -> None:
        self._account = account
        self._throttled: set[int] = set()  # requests (by id) the quota refused, in flight
        self.targets: dict[str, Handler] = {
            TARGET: self._rekognition,
            servicequotas.TARGET: self._service_quotas,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        account = self._account
        stats = account.counts
        stats.arrived(account.now())
        s = account.settings
        raw = await request.read()
        if s.timing is not None:
            leg = s.timing.leg(account.rng)
            await asyncio.sleep(leg.way_in)
            response = await self._handle_in_time(stats, request, raw)
            throttled = id(request) in self._throttled
            self._throttled.discard(id(request))
            await asyncio.sleep(leg.back_throttled if throttled else leg.back)
            return response
        if s.latency or s.latency_jitter:
            await asyncio.sleep(s.latency + account.rng.uniform(0, s.latency_jitter))
        return await self._handle_in_time(stats, request, raw)

    def _count(
        self, stats: Stats, outcome: str, session_id: str | None = None, region: str = "?"
    ) -> None:
        """Count into ``stats``: the Stats of the request's arrival, not a later reset's."""
        stats.count(outcome, self._account.now(), session_id, region)

    async def _handle_in_time(
        self, stats: Stats, request: web.Request, raw: bytes
    ) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith(_AUTH_PREFIX):
            self._count(stats, "unauthenticated")
            return error(400, "MissingAuthenticationTokenException", "Missing Authentication Token")
        access_key, _, scope = auth[len(_AUTH_PREFIX) :].partition("/")
        region = _scope_region(scope)
        stats.by_region.setdefault(region, Counter())["requests"] += 1
        for prefix, (status, code, message) in KEY_ERRORS.items():
            if access_key.startswith(prefix):
                self._count(stats, "denied", region=region)
                return error(status, code, message)
        if self._account.settings.deny_all:
            self._count(stats, "denied", region=region)
            return error(400, *KEY_ERRORS["DENIED"][1:])
        handler = self.targets.get(request.headers.get("X-Amz-Target", ""))
        if handler is None:
            self._count(stats, "invalid", region=region)
            return error(400, "UnknownOperationException", "Unknown operation")
        return await handler(stats, request, raw, region)

    async def _rekognition(
        self, stats: Stats, request: web.Request, raw: bytes, region: str
    ) -> web.StreamResponse:
        """GetFaceLivenessSessionResults: the quota, the faults, the session's answer."""
        account = self._account
        now = account.now()
        account.spawn(now)
        session_id = _session_id(raw)
        if session_id is not None:
            stats.by_session[session_id] += 1
        fault = account.scripted(session_id)
        if fault is None and not account.quota(region).take(now):
            fault = "throttle"
        if fault is None:
            fault = random_fault(account.settings, account.rng)
        if fault == "throttle" and account.settings.timing is not None:
            self._throttled.add(id(request))  # answered after the round trip only
        if fault is not None:
            return await answer_fault(
                fault,
                request,
                session_id,
                settings=account.settings,
                rng=account.rng,
                count=lambda outcome: self._count(stats, outcome, region=region),
                answer=lambda sid: account.answer(sid, region),
            )
        if session_id is None or not SESSION_ID_PATTERN.fullmatch(session_id):
            self._count(stats, "invalid", region=region)
            return error(400, "InvalidParameterException", "SessionId must match the UUID pattern")
        body = account.answer(session_id, region)
        if body is None:
            self._count(stats, "not_found", region=region)
            return error(400, "SessionNotFoundException", f"Session {session_id} not found")
        _assign_versions(body, account.settings.evidence_versions)
        self._count(stats, "ok", session_id, region)
        return ok(json.dumps(body).encode())

    async def _service_quotas(
        self, stats: Stats, request: web.Request, raw: bytes, region: str
    ) -> web.StreamResponse:
        """Service Quotas' ListServiceQuotas (:mod:`batch.emulator.servicequotas`)."""
        stats.quota_lookups += 1
        try:
            asked = json.loads(raw)
        except ValueError:
            asked = None
        if not isinstance(asked, dict):
            return error(400, "SerializationException", "The request body is not a JSON object")
        s = self._account.settings
        tps = s.tps_in(region if s.regions is not None else "")
        return answer(*servicequotas.list_service_quotas(asked, region, tps))


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
