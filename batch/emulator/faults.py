"""The faults table: every fault the emulator can inject, and how each is answered.

A request's fault is its session's next scripted one (``script``), else one drawn from
the seeded RNG at the settings' rates (:func:`random_fault`); :func:`answer_fault` sends
what that fault looks like on the wire (a 500, a body botocore cannot parse, a torn or
dropped connection...) and counts its outcome. A new fault is a name in :data:`FAULTS`
and a branch in :func:`answer_fault`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

from aiohttp import web

from batch.emulator.responses import KEY_ERRORS, drop, error, ok
from batch.emulator.settings import EmulatorSettings

__all__ = ["FAULTS", "answer_fault", "random_fault"]

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

Count = Callable[[str], None]  # an outcome of OUTCOMES, counted for this request
Answer = Callable[[str], dict[str, Any] | None]  # a session's body now (None: not found)


def random_fault(s: EmulatorSettings, rng: random.Random) -> str | None:
    """A fault drawn at the settings' rates, or None."""
    for fault, share in (
        ("drop", s.drop_rate),
        ("slow", s.slow_rate),
        ("server_error", s.error_rate),
        ("malformed", s.malformed_rate),
        ("truncated", s.truncated_rate),
        ("empty", s.empty_rate),
    ):
        if share and rng.random() < share:
            return fault
    return None


async def answer_fault(  # noqa: PLR0911  # long: one answer per fault kind
    fault: str,
    request: web.Request,
    session_id: str | None,
    *,
    settings: EmulatorSettings,
    rng: random.Random,
    count: Count,
    answer: Answer,
) -> web.StreamResponse:
    """The answer of ``fault`` to ``request`` (its outcome counted first)."""
    if fault == "throttle":
        count("throttled")
        code = settings.throttle_error
        if code == "mixed":
            code = rng.choice(["ThrottlingException", "ProvisionedThroughputExceededException"])
        status = 500 if code == "ThrottlingException" else 400
        return error(status, code, "Rate exceeded")
    if fault == "server_error":
        count("server_error")
        return error(500, "InternalServerError", "Internal server error")
    if fault == "not_found":
        count("not_found")
        return error(400, "SessionNotFoundException", f"Session {session_id} not found")
    if fault in ("denied", "expired"):
        count("denied")
        return error(*KEY_ERRORS["DENIED" if fault == "denied" else "EXPIRED"])
    if fault == "slow":
        count("slow")
        await asyncio.sleep(settings.slow_seconds)
        return ok(json.dumps(answer(session_id or "") or {}).encode())
    if fault == "malformed":
        count("malformed")
        return ok(b'{"SessionId": "' + (session_id or "").encode() + b'", "Status": ')
    if fault in _BAD_BODIES:
        count("malformed")
        body = answer(session_id or "") or {"SessionId": session_id}
        return ok(json.dumps(body | _BAD_BODIES[fault]).encode())
    if fault == "empty":
        count("empty")
        return ok(b"{}")
    if fault == "truncated":
        count("truncated")
        return await _torn(request, json.dumps(answer(session_id or "") or {}).encode())
    count("dropped")
    drop(request)
    return web.Response(status=500)  # never sent: the connection is gone


async def _torn(request: web.Request, body: bytes) -> web.StreamResponse:
    """Half of ``body`` under a Content-Length that promises more, then the connection
    closed."""
    response = web.StreamResponse(status=200)
    response.content_type = "application/x-amz-json-1.1"
    response.content_length = len(body) + 100
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    drop(request)
    return response
