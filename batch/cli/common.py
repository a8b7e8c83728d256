"""What every command shares: turning an error into one line and an exit code."""

from __future__ import annotations

import logging

import click

from batch.errors import AccessError, AuditError, ConfigError
from batch.logs import LOGGER, event
from batch.store.locations import Location, parse_location
from batch.verdict import exit_code_for

__all__ = ["fail", "location"]

log = logging.getLogger(LOGGER)

_ACCESS_HINTS = {
    "AccessDeniedException": "the caller may not call rekognition:GetFaceLivenessSessionResults;"
    " grant it in the IAM policy of this user or role",
    "ExpiredTokenException": "the session token has expired; refresh the credentials"
    " (aws sso login, or a new role session) and rerun: finished sessions are kept",
    "UnrecognizedClientException": "the access key is not recognised; check AWS_ACCESS_KEY_ID"
    " or the profile",
    "InvalidSignatureException": "the secret key does not match the access key",
    "RequestExpired": "the request signature expired; check the machine's clock",
    "NoCredentials": "no credentials were found by the AWS credential chain",
    "AccessDenied": "S3 refused the caller; see the IAM permissions in the README",
    "403": "S3 refused the caller; see the IAM permissions in the README",
}


def fail(error: AuditError) -> int:
    message = str(error)
    if isinstance(error, AccessError):
        hint = _ACCESS_HINTS.get(error.code)
        message = f"aborted: {message}" + (f" ({hint})" if hint else "")
    click.echo(f"liveness-audit: error: {message}", err=True)
    code = exit_code_for(error)
    log.debug("error: %s", message, extra=event("error", message=message, exit_code=code))
    return code


def location(text: str, name: str) -> Location:
    try:
        return parse_location(text, name)
    except ValueError as exc:
        raise ConfigError(f"invalid {exc}") from None
