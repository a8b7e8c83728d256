"""The one Rekognition client of a run, and the boundary where its errors are converted.

:func:`open_client` builds a single aioboto3 client for the whole run with botocore's own
retries switched off (``total_max_attempts=1``: our retry policy and limiter must see
every throttle) and a connection pool as large as the worker pool. The AWS side follows
AWS conventions: the standard credential chain, ``profile``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_REKOGNITION`` (botocore reads it) or an explicit ``endpoint_url``.

:meth:`LivenessClient.get` returns a parsed :class:`SessionResult` or raises from
:mod:`batch.errors`; :func:`convert_error` is the only place that knows botocore's and
aiohttp's exception types, most specific first.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore import exceptions as boto
from botocore.parsers import ResponseParserError

from batch import __version__
from batch.config import Settings
from batch.errors import (
    AccessError,
    AuditError,
    ConfigError,
    CredentialsError,
    NotFoundError,
    ServerError,
    SessionError,
    ThrottledError,
    TransportError,
)

__all__ = [
    "EXPIRED_CODES",
    "STATUSES",
    "BoundingBox",
    "Image",
    "LivenessClient",
    "SessionResult",
    "client_config",
    "convert_error",
    "open_client",
    "open_session",
    "parse_result",
]

STATUSES = frozenset({"CREATED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "EXPIRED"})

THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",  # S3
        "503",  # S3 HEAD: no body, so the code is the HTTP status (SlowDown)
    }
)
CREDENTIAL_CODES = frozenset(
    {
        "ExpiredTokenException",
        "ExpiredToken",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
        "RequestExpired",
    }
)
ACCESS_CODES = frozenset({"AccessDeniedException", "AccessDenied", "403"})
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound", "404"})
EXPIRED_CODES = frozenset({"ExpiredTokenException", "ExpiredToken"})


@dataclass(frozen=True, slots=True)
class BoundingBox:
    left: float | None
    top: float | None
    width: float | None
    height: float | None


@dataclass(frozen=True, slots=True)
class Image:
    """One image of a session as data: where it is, or the size and hash of its bytes."""

    bounding_box: BoundingBox | None = None
    s3_bucket: str | None = None
    s3_name: str | None = None
    s3_version: str | None = None
    size: int | None = None
    sha256: str | None = None
    # The bytes themselves are biometric data: carried only as far as the image saver,
    # never printed (repr=False), never written to the report.
    data: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class SessionResult:
    session_id: str
    status: str
    confidence: float | None
    reference_image: Image | None
    audit_images: tuple[Image, ...]


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


def convert_error(exc: BaseException) -> AuditError:  # noqa: PLR0911, PLR0912  # one flat table
    """Map a botocore/aiohttp exception to the :mod:`batch.errors` tree.

    Unknown exception types are not guessed at: the caller re-raises them as bugs.
    """
    if isinstance(exc, AuditError):
        return exc
    if isinstance(exc, boto.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        message = str(error.get("Message") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in CREDENTIAL_CODES:
            return CredentialsError(f"{code}: {message}", code=code)
        if code in ACCESS_CODES:
            return AccessError(f"{code}: {message}", code=code)
        if code in THROTTLE_CODES:
            return ThrottledError(code, message, http_status=status)
        if code in NOT_FOUND_CODES:
            return NotFoundError(code, message or "not found", http_status=status)
        if code in ("InternalServerError", "ServiceUnavailable") or (status or 0) >= 500:
            return ServerError(code, message, http_status=status)
        return SessionError(code, message, http_status=status)
    if isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
        return CredentialsError(str(exc), code="NoCredentials")
    if isinstance(
        exc,
        boto.CredentialRetrievalError
        | boto.TokenRetrievalError
        | boto.SSOError
        | boto.RefreshWithMFAUnsupportedError,
    ):
        return CredentialsError(str(exc), code="CredentialRetrievalError")
    if isinstance(exc, boto.ReadTimeoutError | boto.ConnectTimeoutError | asyncio.TimeoutError):
        return TransportError("Timeout", str(exc) or type(exc).__name__)
    if isinstance(exc, boto.EndpointConnectionError):
        return TransportError("ConnectionError", str(exc))
    if isinstance(exc, boto.ConnectionClosedError | boto.HTTPClientError | boto.ConnectionError):
        return TransportError("ConnectionError", str(exc))
    if isinstance(exc, ResponseParserError):
        return TransportError("MalformedResponse", str(exc).splitlines()[0])
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError("TruncatedResponse", str(exc) or type(exc).__name__)
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return TransportError("ConnectionError", str(exc) or type(exc).__name__)
    raise exc


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


def client_config(settings: Settings) -> AioConfig:
    return AioConfig(
        retries={"total_max_attempts": 1},  # our policy retries; botocore must not
        max_pool_connections=settings.concurrency,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        user_agent_extra=f"liveness-audit/{__version__}",
    )


async def open_session(settings: Settings) -> aioboto3.Session:
    """The AWS session of a run (profile, region); fails fast when no credentials exist."""
    # AWS_REGION is the SDKs' convention; botocore itself reads only AWS_DEFAULT_REGION.
    region = settings.region or os.environ.get("AWS_REGION") or None
    try:
        session = aioboto3.Session(profile_name=settings.profile, region_name=region)
    except boto.ProfileNotFound as exc:
        raise ConfigError(f"invalid setting 'profile': {exc}") from None
    try:
        credentials = await session.get_credentials()
    except Exception as exc:  # converted at this one boundary
        raise convert_error(exc) from exc
    if credentials is None:
        raise CredentialsError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or --profile, or run where an instance or task role is available",
            code="NoCredentials",
        )
    return session


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
