"""The one error tree of liveness-audit.

Every error the tool raises on purpose derives from :class:`AuditError`. Errors from
botocore and aiohttp are converted into this tree at exactly one place,
:func:`batch.aws.convert.convert_error`, and the CLI maps the tree to exit codes at exactly
one place, :func:`batch.verdict.exit_code_for`.

::

    AuditError
    ├── UsageError                  exit 2: nothing was fetched
    │   ├── ConfigError             a setting is invalid (names the setting)
    │   ├── InputError              the input file is missing, unreadable or malformed
    │   ├── OutputError             the report cannot be written where asked
    │   └── CheckpointError         the checkpoint belongs to another input or settings
    ├── PublishError                exit 1: the report is complete locally, not uploaded
    ├── StorageError                exit 1: a local write failed (disk full, I/O error): the
    │                               run stops in good order, what was journaled is kept
    ├── AccessError                 exit 3: not about one session, the whole run stops
    │   └── CredentialsError        missing, expired or rejected credentials
    └── ServiceError                one call failed; carries the service's error code
        ├── RetryableError          worth another attempt
        │   ├── ThrottledError      ThrottlingException, ProvisionedThroughputExceeded
        │   ├── ServerError         InternalServerError and other 5xx
        │   ├── TransportError      connection refused/reset, timeouts, torn bodies
        │   └── StaleCredentialsError  ExpiredToken, a few times in a row at most
        ├── SessionError            a definitive per-session answer (SessionNotFound, ...)
        │   └── NotFoundError       an S3 object, version or bucket does not exist
        └── ConflictError           a conditional S3 write lost a race (412/409): re-read
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "AuditError",
    "CheckpointError",
    "ConfigError",
    "ConflictError",
    "CredentialsError",
    "InputError",
    "NotFoundError",
    "OutputError",
    "PublishError",
    "RetryableError",
    "ServerError",
    "ServiceError",
    "SessionError",
    "StaleCredentialsError",
    "StorageError",
    "ThrottledError",
    "TransportError",
    "UsageError",
]


class AuditError(Exception):
    """Base class of every error liveness-audit raises on purpose."""


class UsageError(AuditError):
    """The command cannot start: bad settings, input or output. Exit code 2."""


class ConfigError(UsageError):
    """A setting is invalid; the message names it."""


class InputError(UsageError):
    """The input file cannot be read as a list of session IDs."""


class OutputError(UsageError):
    """The report (or a file next to it) cannot be written where asked."""


class CheckpointError(UsageError):
    """An existing checkpoint does not belong to this input or these settings."""


class PublishError(AuditError):
    """The report is complete in the work directory but could not be uploaded. Exit 1."""


class StorageError(AuditError):
    """A local write (checkpoint, report) failed: disk full, an I/O error. Exit 1.

    The run stops in good order: what was journaled is kept and a rerun of the same
    command, once there is space again, resumes. ``path`` is the file that could not be
    written; the message names it and the error (``ENOSPC: No space left on device``).
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class AccessError(AuditError):
    """The service refuses the caller, not one session. The run stops. Exit code 3."""

    def __init__(self, message: str, *, code: str = "AccessDeniedException") -> None:
        super().__init__(message)
        self.code = code


class CredentialsError(AccessError):
    """Credentials are missing, expired or not recognised."""


class ServiceError(AuditError):
    """One call to the service failed; ``code`` is the service's (or our) error code."""

    def __init__(self, code: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.http_status = http_status


class RetryableError(ServiceError):
    """A transient failure: another attempt may succeed."""


class ThrottledError(RetryableError):
    """The service's quota said no; the limiter slows down."""


class ServerError(RetryableError):
    """The service failed on its side (HTTP 5xx)."""


class TransportError(RetryableError):
    """The request or its answer was lost on the way: refused, reset, timed out, torn."""


class StaleCredentialsError(RetryableError):
    """The service said the token expired; the credential chain may refresh it in time.

    Only a few in a row are retried: an expiry that persists becomes a
    :class:`CredentialsError` and stops the run.
    """


class SessionError(ServiceError):
    """A definitive answer about one session (e.g. SessionNotFoundException)."""


class NotFoundError(SessionError):
    """S3 answered that the object, version or bucket does not exist (404)."""


class ConflictError(ServiceError):
    """A conditional write (``If-Match``/``If-None-Match``) found the object changed (412/409).

    Another writer got there first: read the object again, merge, and write again.
    """
