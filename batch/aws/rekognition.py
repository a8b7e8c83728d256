"""The Rekognition side of a run: ``GetFaceLivenessSessionResults`` for one session.

:func:`open_client` builds the run's single Rekognition client on the run's AWS session,
with a connection pool as large as the worker pool. :meth:`LivenessClient.get` returns a
parsed :class:`~batch.model.SessionResult` or raises from :mod:`batch.errors`
(converted by :func:`batch.aws.convert.convert_error`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
from botocore import exceptions as boto

from batch.aws.convert import convert_error
from batch.aws.session import client_config, open_session
from batch.config import Settings
from batch.errors import ConfigError, ServerError
from batch.model import STATUSES, BoundingBox, Image, SessionResult

__all__ = ["LivenessClient", "open_client", "parse_result"]


def _image(raw: Mapping[str, Any]) -> Image:
    box = raw.get("BoundingBox")
    bbox = (
        BoundingBox(box.get("Left"), box.get("Top"), box.get("Width"), box.get("Height"))
        if isinstance(box, Mapping)
        else None
    )
    s3_object = raw.get("S3Object")
    s3: Mapping[str, Any] = s3_object if isinstance(s3_object, Mapping) else {}
    data = raw.get("Bytes")
    if not isinstance(data, bytes | bytearray):
        data = None
    return Image(
        bounding_box=bbox,
        s3_bucket=s3.get("Bucket"),
        s3_name=s3.get("Name"),
        s3_version=s3.get("Version"),
        size=None if data is None else len(data),
        sha256=None if data is None else hashlib.sha256(data).hexdigest(),
        data=None if data is None else bytes(data),
    )


def parse_result(session_id: str, response: Mapping[str, Any]) -> SessionResult:
    """Turn a successful response into a :class:`SessionResult`.

    A 200 that lacks a known ``Status`` or answers for another session is not an answer:
    it raises :class:`ServerError` (``MalformedResponse``) so the call is retried.
    """
    status = response.get("Status")
    if status not in STATUSES:
        raise ServerError("MalformedResponse", f"response has no valid Status: {status!r}")
    answered = response.get("SessionId")
    if answered is not None and answered != session_id:
        raise ServerError("MalformedResponse", "response is for another session")
    confidence = response.get("Confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        confidence = None
    reference = response.get("ReferenceImage")
    audits = response.get("AuditImages") or []
    return SessionResult(
        session_id=session_id,
        status=str(status),
        confidence=None if confidence is None else float(confidence),
        reference_image=_image(reference) if isinstance(reference, Mapping) else None,
        audit_images=tuple(_image(a) for a in audits if isinstance(a, Mapping)),
    )


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
    settings: Settings, session: aioboto3.Session | None = None
) -> AsyncIterator[LivenessClient]:
    """The run's Rekognition client, on ``session`` (or a new one)."""
    session = session or await open_session(settings)
    try:
        context = session.client(
            "rekognition", endpoint_url=settings.endpoint_url, config=client_config(settings)
        )
        async with context as client:
            yield LivenessClient(client)
    except boto.NoRegionError:
        raise ConfigError(
            "invalid setting 'region': no AWS region configured; pass --region or set AWS_REGION"
        ) from None
