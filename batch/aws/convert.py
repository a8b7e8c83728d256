"""The one boundary where botocore's and aiohttp's exceptions become :mod:`batch.errors`.

Both the Rekognition client and the S3 store call :func:`convert_error`; nothing else in
the tool knows botocore's or aiohttp's exception types. Most specific first.
"""

from __future__ import annotations

import asyncio

import aiohttp
from botocore import exceptions as boto
from botocore.parsers import ResponseParserError

from batch.errors import (
    AccessError,
    AuditError,
    ConflictError,
    CredentialsError,
    NotFoundError,
    ServerError,
    SessionError,
    ThrottledError,
    TransportError,
)

__all__ = ["EXPIRED_CODES", "convert_error"]

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
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})
EXPIRED_CODES = frozenset({"ExpiredTokenException", "ExpiredToken"})


_PARSERS = ("botocore.parsers", "aiobotocore.parsers")
_PARSE_FAILURES = (ValueError, TypeError, AttributeError, KeyError, IndexError)


def _raised_in_parser(exc: BaseException) -> bool:
    """``exc`` is a plain Python error raised inside botocore's response parser."""
    if not isinstance(exc, _PARSE_FAILURES):
        return False
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_PARSERS):
            return True
        tb = tb.tb_next
    return False


def convert_error(exc: BaseException) -> AuditError:  # noqa: PLR0911, PLR0912  # long: one flat table
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
        if code in CONFLICT_CODES or status == 412:
            return ConflictError(code, message or "the object changed", http_status=status)
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
    if _raised_in_parser(exc):
        # A 200 whose body botocore's parser chokes on (Bytes not base64, a list that is
        # not one): that session's malformed answer, never the run's crash.
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        return TransportError("MalformedResponse", f"unparsable answer: {first}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError("TruncatedResponse", str(exc) or type(exc).__name__)
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return TransportError("ConnectionError", str(exc) or type(exc).__name__)
    raise exc
