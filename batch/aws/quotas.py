"""The account's applied quota for GetFaceLivenessSessionResults, from Service Quotas.

``--quota auto`` asks Service Quotas' ``ListServiceQuotas`` (service code
``rekognition``) on the run's AWS session, in the run's region, and takes the quota whose
name mentions ``GetFaceLivenessSessionResults`` (names, not codes: a quota's code is not
something to hard-wire). The endpoint is ``quotas_endpoint_url`` if set, else what
botocore reads (``AWS_ENDPOINT_URL_SERVICE_QUOTAS``, then AWS's own).

The lookup never stops a run: when it is not allowed (``AccessDenied``: the caller needs
``servicequotas:ListServiceQuotas``), the service cannot be reached, or no such quota is
listed, :func:`lookup_quota` says why in a :class:`QuotaLookup` and the run goes on as
with no quota.
"""

from __future__ import annotations

from dataclasses import dataclass

import aioboto3

from batch.aws.convert import convert_error
from batch.aws.session import client_config
from batch.config import Settings
from batch.errors import AuditError

__all__ = ["OPERATION", "SERVICE_CODE", "QuotaLookup", "lookup_quota"]

SERVICE_CODE = "rekognition"
OPERATION = "GetFaceLivenessSessionResults"


@dataclass(frozen=True)
class QuotaLookup:
    """What Service Quotas said: the quota (requests/s) and its name, or why there is none."""

    tps: float | None
    name: str | None = None
    code: str | None = None
    region: str | None = None
    reason: str | None = None  # why ``tps`` is None

    def describe(self) -> str:
        """One log line's worth: what was found, or why nothing was."""
        where = f" in {self.region}" if self.region else ""
        if self.tps is None:
            return f"no quota from Service Quotas{where} ({self.reason}); running as with no quota"
        return f"Service Quotas{where}: {self.tps:g} requests/s ({self.name}, {self.code})"


def pick_quota(quotas: list[dict[str, object]]) -> dict[str, object] | None:
    """The quota of :data:`OPERATION` among a ``ListServiceQuotas`` answer's ``Quotas``."""
    for quota in quotas:
        if OPERATION.lower() in str(quota.get("QuotaName", "")).lower():
            return quota
    return None


async def lookup_quota(
    session: aioboto3.Session, settings: Settings, *, region: str | None = None
) -> QuotaLookup:
    """The applied quota of :data:`OPERATION` in ``region`` (None: the session's); never
    raises."""
    region = region or session.region_name
    if not region:
        return QuotaLookup(None, reason="no AWS region configured")
    try:
        async with session.client(
            "service-quotas",
            region_name=region,
            endpoint_url=settings.quotas_endpoint_url,
            config=client_config(settings, pool=1),
        ) as client:
            paginator = client.get_paginator("list_service_quotas")
            quotas: list[dict[str, object]] = []
            async for page in paginator.paginate(ServiceCode=SERVICE_CODE):
                quotas += page.get("Quotas", [])
    except Exception as exc:  # noqa: BLE001  # convert_error re-raises unknown types
        return QuotaLookup(None, region=region, reason=_first_line(convert_error(exc)))
    quota = pick_quota(quotas)
    if quota is None:
        return QuotaLookup(None, region=region, reason=f"no quota named for {OPERATION} listed")
    value = quota.get("Value")
    if not isinstance(value, int | float) or not value > 0:
        return QuotaLookup(None, region=region, reason=f"the quota's value is {value!r}")
    return QuotaLookup(
        float(value),
        name=str(quota.get("QuotaName")),
        code=str(quota.get("QuotaCode")),
        region=region,
    )


def _first_line(error: AuditError) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
