"""``liveness-audit verify``: a report against its manifest, its input and its evidence.

Reports and inputs in S3 are copied into a private temporary folder first; the checks
themselves are :func:`batch.store.manifest.verify_report` and, with ``evidence``,
:func:`batch.evidence.recheck_evidence`.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from batch.aws.s3 import connect_s3, local_copy
from batch.config import Settings
from batch.errors import InputError
from batch.evidence import Recheck, recheck_evidence
from batch.store.inputs import file_sha256
from batch.store.locations import Location, S3Url
from batch.store.manifest import Verification, verify_report

__all__ = ["verify_location"]


async def verify_location(
    report: Location,
    source: Location | None,
    rows_sha256: str | None,
    evidence: bool,
    settings: Settings,
) -> tuple[Verification, Recheck | None]:
    """Verify the report at ``report`` (and ``source``, its input, if given)."""
    needs_s3 = evidence or isinstance(report, S3Url) or isinstance(source, S3Url)
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="liveness-audit-")))
        store = await stack.enter_async_context(connect_s3(settings)) if needs_s3 else None
        report_path = await local_copy(store, report, folder, "report")
        input_sha256 = None
        if source is not None:
            source_path = await local_copy(store, source, folder, "input")
            if not source_path.is_file():
                raise InputError(f"input file not found: {source}")
            input_sha256 = file_sha256(source_path)
        try:
            result = verify_report(report_path, input_sha256=input_sha256, rows_sha256=rows_sha256)
        except InputError as exc:
            raise InputError(str(exc).replace(str(report_path), str(report))) from None
        if not evidence:
            return result, None
        assert store is not None  # evidence needs S3, so it was opened
        return result, await recheck_evidence(store, report_path, concurrency=settings.concurrency)
