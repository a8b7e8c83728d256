"""The AWS session of a run and the client settings every client of it shares.

AWS conventions throughout: the standard credential chain, ``profile``, ``AWS_REGION``,
``AWS_ENDPOINT_URL_<SERVICE>`` (botocore reads them) or explicit endpoint settings.
botocore's own retries are off (``total_max_attempts=1``): the tool's retry policy and
limiter must see every throttle.
"""

from __future__ import annotations

import os

import aioboto3
from aiobotocore.config import AioConfig
from botocore import exceptions as boto

from batch import __version__
from batch.aws.convert import convert_error
from batch.config import Settings
from batch.errors import ConfigError, CredentialsError, RetryableError
from batch.pacing.retry import RetryPolicy

__all__ = ["client_config", "open_session", "retry_policy"]


def retry_policy(settings: Settings) -> RetryPolicy:
    """The run's one retry policy, for Rekognition and S3 calls alike."""
    return RetryPolicy(
        on=(RetryableError,),
        attempts=settings.max_attempts,
        wait_initial=settings.backoff_initial,
        wait_max=settings.backoff_max,
    )


def client_config(settings: Settings, *, pool: int | None = None) -> AioConfig:
    return AioConfig(
        retries={"total_max_attempts": 1},  # our policy retries; botocore must not
        max_pool_connections=pool or settings.concurrency,
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
