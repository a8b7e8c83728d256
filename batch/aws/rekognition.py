"""The Rekognition side of a run: ``GetFaceLivenessSessionResults`` for one session.

:func:`open_client` builds the run's single Rekognition client on the run's AWS session,
with a connection pool as large as the worker pool, signing with
:class:`~batch.aws.signing.LeanSigV4Auth` (botocore's SigV4, the key derived once).
:meth:`LivenessClient.get` returns a parsed :class:`~batch.model.SessionResult` or raises
from :mod:`batch.errors` (converted by :func:`batch.aws.convert.convert_error`).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
from botocore import exceptions as boto

from batch.aws.convert import convert_error
from batch.aws.session import drop_retry_hook, open_session, per_session_config
from batch.aws.signing import use_lean_signer
from batch.config import Settings
from batch.errors import ConfigError, ServerError
from batch.model import STATUSES, BoundingBox, Challenge, Image, SessionResult, Status

__all__ = ["LivenessClient", "open_client", "parse_result"]

_BOX_KEYS = ("Left", "Top", "Width", "Height")


def _malformed(what: str) -> ServerError:
    return ServerError("MalformedResponse", what)


def _number(value: object, what: str) -> float | None:
    """A finite number, or None when absent; anything else is a malformed answer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _malformed(f"{what} is not a finite number: {str(value)[:40]!r}")
    return float(value)


def _text(value: object, what: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _malformed(f"{what} is missing or not a string")
    return value


def _image(raw: object, what: str) -> Image:
    """One image of the answer, checked: what cannot go into the report raises."""
    if not isinstance(raw, Mapping):
        raise _malformed(f"{what} is not an object")
    box = raw.get("BoundingBox")
    bbox = None
    if box is not None:
        if not isinstance(box, Mapping):
            raise _malformed(f"{what}.BoundingBox is not an object")
        bbox = BoundingBox(*(_number(box.get(k), f"{what}.BoundingBox.{k}") for k in _BOX_KEYS))
    s3 = raw.get("S3Object")
    if s3 is not None and not isinstance(s3, Mapping):
        raise _malformed(f"{what}.S3Object is not an object")
    data = raw.get("Bytes")
    if data is not None and not isinstance(data, bytes | bytearray):
        raise _malformed(f"{what}.Bytes is not binary")
    return Image(
        bounding_box=bbox,
        s3_bucket=None
        if s3 is None
        else _text(s3.get("Bucket"), f"{what}.S3Object.Bucket", required=True),
        s3_name=None
        if s3 is None
        else _text(s3.get("Name"), f"{what}.S3Object.Name", required=True),
        s3_version=None
        if s3 is None
        else _text(s3.get("Version"), f"{what}.S3Object.Version", required=False),
        size=None if data is None else len(data),
        sha256=None if data is None else hashlib.sha256(data).hexdigest(),
        data=None if data is None else bytes(data),
    )


def parse_result(session_id: str, response: Mapping[str, Any]) -> SessionResult:
    """Turn a successful response into a :class:`SessionResult`, validated.

    A 200 that is not a well-formed answer raises :class:`ServerError`
    (``MalformedResponse``) so the call is retried, and after the last attempt the session
    records that error: nothing malformed reaches the report or the checkpoint. Malformed
    means: no known ``Status``; an answer for another session; a ``Confidence`` or
    bounding-box value that is not a finite number; a ``Confidence`` outside 0-100 (the
    documented range); an image, ``BoundingBox`` or
    ``S3Object`` that is not an object; an ``S3Object`` without ``Bucket`` or ``Name``;
    ``Bytes`` that are not binary; ``AuditImages`` that is not a list; a ``Challenge``
    without a ``Type``.
    """
    status = response.get("Status")
    if status not in STATUSES:
        raise _malformed(f"response has no valid Status: {str(status)[:40]!r}")
    answered = response.get("SessionId")
    if answered is not None and answered != session_id:
        raise _malformed("response is for another session")
    reference = response.get("ReferenceImage")
    audits = response.get("AuditImages")
    if audits is not None and not isinstance(audits, list | tuple):
        raise _malformed("AuditImages is not a list")
    confidence = _number(response.get("Confidence"), "Confidence")
    if confidence is not None and not 0.0 <= confidence <= 100.0:
        raise _malformed(f"Confidence {confidence:g} is outside 0-100")
    return SessionResult(
        session_id=session_id,
        status=Status(status),
        confidence=confidence,
        reference_image=None if reference is None else _image(reference, "ReferenceImage"),
        audit_images=tuple(_image(a, f"AuditImages[{i}]") for i, a in enumerate(audits or ())),
        challenge=_challenge(response.get("Challenge")),
    )


def _challenge(raw: object) -> Challenge | None:
    """``Challenge {Type, Version}``; a type this tool does not know yet is kept as named."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("Type"), str):
        raise _malformed("Challenge is not an object with a Type")
    version = raw.get("Version")
    if version is not None and not isinstance(version, str):
        raise _malformed("Challenge.Version is not a string")
    return Challenge(str(raw["Type"])[:64], None if version is None else version[:64])


class LivenessClient:
    """``GetFaceLivenessSessionResults`` for one session, errors already converted."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def get(self, session_id: str) -> SessionResult:
        try:
            response = await self._client.get_face_liveness_session_results(SessionId=session_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # converted at this one boundary
            raise convert_error(exc) from exc
        return parse_result(session_id, response)


@asynccontextmanager
async def open_client(
    settings: Settings, session: aioboto3.Session | None = None, *, region: str | None = None
) -> AsyncIterator[LivenessClient]:
    """The run's Rekognition client, on ``session`` (or a new one), in ``region`` (None:
    the session's); ``endpoint_url``, when set, serves every region."""
    session = session or await open_session(settings)
    try:
        context = session.client(
            "rekognition",
            region_name=region,
            endpoint_url=settings.endpoint_url,
            config=per_session_config(settings),
        )
        async with context as client:
            drop_retry_hook(client)
            use_lean_signer(client)
            yield LivenessClient(client)
    except boto.NoRegionError:
        raise ConfigError(
            "invalid setting 'region': no AWS region configured; pass --region or set AWS_REGION"
        ) from None
