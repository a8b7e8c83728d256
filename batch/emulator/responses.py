"""AWS JSON 1.1 answers as the service sends them, and the key prefixes that fail auth.

An error is a ``{"__type", "Message"}`` body with the reference's HTTP status; every
answer carries an ``x-amzn-RequestId``. :func:`drop` closes the connection instead.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

__all__ = ["KEY_ERRORS", "answer", "drop", "error", "ok"]

CONTENT_TYPE = "application/x-amz-json-1.1"

# Access keys starting with these are refused as the service refuses such credentials.
KEY_ERRORS = {
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


def answer(status: int, body: Any) -> web.Response:
    """``body`` as JSON with ``status``."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
        content_type=CONTENT_TYPE,
    )


def error(status: int, code: str, message: str) -> web.Response:
    return answer(status, {"__type": code, "Message": message})


def ok(body: bytes) -> web.Response:
    """A 200 with ``body`` as it is (a fault may send one that is not JSON)."""
    return web.Response(
        status=200,
        body=body,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
        content_type=CONTENT_TYPE,
    )


def drop(request: web.Request) -> None:
    """Close the connection without (the rest of) an answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()
