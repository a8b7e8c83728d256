"""The Service Quotas ``ListServiceQuotas`` answer for service code ``rekognition``.

AWS JSON 1.1 with ``X-Amz-Target: ServiceQuotasV20190624.ListServiceQuotas`` and a body
``{"ServiceCode": "rekognition"}``; the answer lists the quota for
``GetFaceLivenessSessionResults`` (its value: the emulated region's tps) beside one for
another operation, so a caller must pick the quota by its name. An emulator without a
quota lists only the other one. Another service code answers ``NoSuchResourceException``.

The quota name follows the pattern of Rekognition's published TPS quotas; the quota
codes are the emulator's own (the real codes were not at hand): callers should match
:data:`QUOTA_NAME`, not the code.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OTHER_QUOTA_NAME", "QUOTA_CODE", "QUOTA_NAME", "TARGET", "list_service_quotas"]

TARGET = "ServiceQuotasV20190624.ListServiceQuotas"
QUOTA_NAME = (
    "Transactions per second per account for the Amazon Rekognition Face Liveness "
    "operation GetFaceLivenessSessionResults"
)
QUOTA_CODE = "L-E0000001"  # the emulator's own code: see the module docstring
OTHER_QUOTA_NAME = (
    "Transactions per second per account for the Amazon Rekognition Image operation DetectFaces"
)
_OTHER = (OTHER_QUOTA_NAME, "L-E0000002", 50.0)


def _quota(region: str, name: str, code: str, value: float) -> dict[str, Any]:
    return {
        "ServiceCode": "rekognition",
        "ServiceName": "Amazon Rekognition",
        "QuotaArn": f"arn:aws:servicequotas:{region}:123456789012:rekognition/{code}",
        "QuotaCode": code,
        "QuotaName": name,
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
        "QuotaAppliedAtLevel": "ACCOUNT",
    }


def list_service_quotas(
    request: dict[str, Any], region: str, tps: float | None
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body answering ``request`` in ``region``."""
    service = request.get("ServiceCode")
    if service != "rekognition":
        return 400, {
            "__type": "NoSuchResourceException",
            "Message": f"The request failed because the specified service {service!r} "
            "does not exist.",
        }
    quotas = [_quota(region, *_OTHER)]
    if tps is not None:
        quotas.insert(0, _quota(region, QUOTA_NAME, QUOTA_CODE, float(tps)))
    return 200, {"Quotas": quotas}
