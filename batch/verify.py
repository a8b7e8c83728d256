"""``liveness-audit verify``: a report against its manifest, its input and its evidence.

Reports and inputs in S3 are copied into a private temporary folder first; the checks
themselves are :func:`batch.manifest.verify_report` and, with ``evidence``,
:func:`batch.evidence.recheck_evidence`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from batch.audit import retry_policy
from batch.client import open_session
from batch.config import Settings
from batch.errors import InputError
from batch.evidence import Recheck, recheck_evidence
from batch.locations import Location, S3Url
from batch.manifest import Verification, verify_report
from batch.sources import file_sha256
from batch.storage import open_store

__all__ = ["verify_location"]


async def verify_location(
    report: Location,
    source: Location | None,
    rows_sha256: str | None,
    evidence: bool,
    settings: Settings,
) -> tuple[Verification, Recheck | None]:
    """Verify the report at ``report`` (and ``source``, its input, if given)."""
    with tempfile.TemporaryDirectory(prefix="liveness-audit-verify-") as folder:
        local: dict[str, Path] = {}
        remote = {
            name: url
            for name, url in (("report", report), ("input", source))
            if isinstance(url, S3Url)
        }
        if remote:
            session = await open_session(settings)
            async with open_store(settings, session, retry_policy(settings)) as store:
                for name, url in remote.items():
                    local[name] = Path(folder) / name
                    await store.download(url, local[name], what=name)
        report_path = local.get("report") or report
        source_path = local.get("input") or source
        assert isinstance(report_path, Path)
        input_sha256 = None
        if source_path is not None:
            assert isinstance(source_path, Path)
            if not source_path.is_file():
                raise InputError(f"input file not found: {source}")
            input_sha256 = file_sha256(source_path)
        try:
            result = verify_report(report_path, input_sha256=input_sha256, rows_sha256=rows_sha256)
        except InputError as exc:
            raise InputError(str(exc).replace(str(report_path), str(report))) from None
        if not evidence:
            return result, None
        session = await open_session(settings)
        async with open_store(settings, session, retry_policy(settings)) as store:
            recheck = await recheck_evidence(store, report_path, concurrency=settings.concurrency)
        return result, recheck
