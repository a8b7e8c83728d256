"""What every command shares: turning an error into one line and an exit code."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import click

from batch.config import ENV_PREFIX
from batch.errors import AccessError, AuditError, ConfigError
from batch.logs import LOGGER, say
from batch.store.locations import Location, parse_location
from batch.verdict import exit_code_for

__all__ = ["ACCESS_HINTS", "early_log_format", "fail", "location", "out", "plural"]

log = logging.getLogger(LOGGER)

ACCESS_HINTS = {
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
        hint = ACCESS_HINTS.get(error.code)
        message = f"aborted: {message}" + (f" ({hint})" if hint else "")
    code = exit_code_for(error)
    say(f"error: {message}", name="error", level=logging.ERROR, exit_code=code)
    return code


def location(text: str, name: str) -> Location:
    try:
        return parse_location(text, name)
    except ValueError as exc:
        raise ConfigError(f"invalid {exc}") from None


def early_log_format(flags: Mapping[str, Any]) -> Literal["text", "json"]:
    """The log format asked for before the settings are validated (their own errors are
    then events too): the flag, else ``LIVENESS_AUDIT_LOG_FORMAT``, else text."""
    asked = flags.get("log_format") or os.environ.get(ENV_PREFIX + "LOG_FORMAT")
    return "json" if asked == "json" else "text"


def out(text: str) -> None:
    """A line on stdout that a closed pipe (``| head -1``) cannot turn into a crash.

    The first ``BrokenPipeError`` points stdout at ``/dev/null`` for the rest of the
    process, so the command ends with its own exit code, not 1 or 120.
    """
    try:
        click.echo(text)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def plural(count: int, noun: str) -> str:
    """``1 session``, ``2 sessions``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_PLACEHOLDER = re.compile(r"{([^{}]*)}")


def render_output(template: str, *, timezone: str, now: datetime | None = None) -> str:
    """Fill ``{date}``, ``{time}``, ``{datetime}`` of an output path (in ``timezone``)."""
    moment = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone))
    values = {
        "date": moment.strftime("%Y-%m-%d"),
        "time": moment.strftime("%H%M%S"),
        "datetime": moment.strftime("%Y-%m-%dT%H%M%S"),
    }
    unknown = [name for name in _PLACEHOLDER.findall(template) if name not in values]
    if unknown:
        raise ConfigError(
            f"invalid --output {template!r}: unknown placeholder {{{unknown[0]}}} "
            "(known: {date}, {time}, {datetime})"
        )
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
