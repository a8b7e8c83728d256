"""The AWS session of a run and the client settings every client of it shares.

AWS conventions throughout: the standard credential chain, ``profile``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_<SERVICE>`` (botocore reads them) or explicit endpoint settings.
botocore's own retries are off (``total_max_attempts=1``): the tool's retry policy and
limiter must see every throttle.

What botocore would redo on every request but can do once is done once (measured in
docs/BENCHMARKS.md, "CPU per session"): the User-Agent string is built at import and given
as ``user_agent`` (botocore otherwise assembles and sanitises it from a dozen parts twice
per request); the per-session client (:func:`per_session_config`) skips botocore's
parameter validation (session IDs are validated at input) and :func:`drop_retry_hook`
removes the retry handler that, with one attempt allowed, only ever answers "no".
"""

from __future__ import annotations

import os
import platform
from typing import Any

import aioboto3
import aiobotocore
import botocore.session
from aiobotocore.config import AioConfig
from botocore import exceptions as boto

from batch import __version__
from batch.aws.convert import convert_error
from batch.config import Settings
from batch.errors import ConfigError, CredentialsError, RetryableError
from batch.pacing.retry import RetryPolicy

__all__ = [
    "USER_AGENT",
    "client_config",
    "drop_retry_hook",
    "open_session",
    "per_session_config",
    "resolved_region",
    "retry_policy",
]


def resolved_region(settings: Settings) -> str | None:
    """The region a client of ``settings`` resolves: the setting, ``AWS_REGION``, else
    botocore's chain (``AWS_DEFAULT_REGION``, the profile's config file); ConfigError
    naming the setting when the profile does not exist."""
    region = settings.region or os.environ.get("AWS_REGION")
    if region:
        return region
    try:
        found = botocore.session.Session(profile=settings.profile).get_config_variable("region")
    except boto.ProfileNotFound as exc:
        raise ConfigError(f"invalid setting 'profile': {exc}") from None
    return str(found) if found else None


# botocore appends the session's own extra ("botocore/VERSION") to a given user_agent.
USER_AGENT = (
    f"aiobotocore/{aiobotocore.__version__} os/{platform.system().lower()}"
    f" lang/python#{platform.python_version()} liveness-audit/{__version__}"
)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The run's one retry policy, for Rekognition and S3 calls alike."""
    return RetryPolicy(
        on=(RetryableError,),
        attempts=settings.max_attempts,
        wait_initial=settings.backoff_initial,
        wait_max=settings.backoff_max,
    )


def client_config(
    settings: Settings, *, pool: int | None = None, validate: bool = True
) -> AioConfig:
    """Settings of a client of the run; ``validate=False``: see :func:`per_session_config`."""
    return AioConfig(
        retries={"total_max_attempts": 1},  # our policy retries; botocore must not
        max_pool_connections=pool or settings.concurrency,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        user_agent=USER_AGENT,  # built once, not twice per request
        parameter_validation=validate,
    )


def per_session_config(settings: Settings) -> AioConfig:
    """Settings of the client called once per session (Rekognition): no parameter
    validation, the one parameter (a session ID) was validated when the input was read."""
    return client_config(settings, validate=False)


def drop_retry_hook(client: Any) -> None:
    """Unregister botocore's retry handler from ``client``'s events (a public hook, by the
    ``unique_id`` botocore registers it under): with ``total_max_attempts=1`` it decides
    "no retry" on every answer, which is also what no handler means."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.unregister(f"needs-retry.{service}", unique_id=f"retry-config-{service}")


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
