"""``liveness-audit verify``: a report against its manifest, its input and its evidence.

Reports and inputs in S3 are copied into a private temporary folder first; the checks
themselves are :func:`batch.store.manifest.verify_report` and, with ``evidence``,
:func:`batch.evidence.recheck_evidence`.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from batch.aws.s3 import connect_s3, local_copy
from batch.config import Settings
from batch.errors import InputError
from batch.evidence import Recheck, recheck_evidence
from batch.store.inputs import file_sha256
from batch.store.locations import Location, S3Url
from batch.store.manifest import Verification, verify_report
from batch.store.report import read_provenance

__all__ = ["AcceptedEdit", "Checked", "accepted_edits", "verify_location"]


@dataclass(frozen=True)
class AcceptedEdit:
    """One merge into an edited report that ``--accept-edited-report`` allowed, as the
    provenance records it: the history ``verify`` shows after the report is signed again."""

    run_id: str
    at: str
    rows_differ: int | None  # None: the manifest could not count them
    session_ids: tuple[str, ...]
    problems: tuple[str, ...]

    def describe(self) -> str:
        if self.rows_differ is not None:
            shown = ", ".join(self.session_ids[:5])
            more = ", ..." if len(self.session_ids) > 5 else ""
            what = f"{self.rows_differ} rows differed" + (
                f" (sessions {shown}{more})" if shown else ""
            )
        else:
            what = "; ".join(self.problems) or "the report differed from its manifest"
        return f"run {self.run_id} at {self.at} merged into it although it was edited: {what}"


@dataclass(frozen=True)
class Checked:
    """What ``verify`` found: the manifest check, the evidence looked at again (with
    ``--evidence``), and the edits earlier runs accepted."""

    verification: Verification
    recheck: Recheck | None
    history: tuple[AcceptedEdit, ...]


def accepted_edits(path: Path) -> tuple[AcceptedEdit, ...]:
    """The ``accepted_edits`` of the report's provenance, oldest first; () if none (or no
    readable provenance: the manifest check reports that)."""
    try:
        edits = read_provenance(path).get("accepted_edits")
    except InputError:
        return ()
    if not isinstance(edits, list):
        return ()
    return tuple(
        AcceptedEdit(
            run_id=str(edit.get("run_id", "?")),
            at=str(edit.get("at", "?")),
            rows_differ=edit["report_rows_differ"]
            if isinstance(edit.get("report_rows_differ"), int)
            else None,
            session_ids=tuple(str(i) for i in edit.get("session_ids") or ()),
            problems=tuple(str(p) for p in edit.get("problems") or ()),
        )
        for edit in edits
        if isinstance(edit, dict)
    )


async def verify_location(
    report: Location,
    source: Location | None,
    rows_sha256: str | None,
    evidence: bool,
    settings: Settings,
) -> Checked:
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
        history = accepted_edits(report_path)
        if not evidence:
            return Checked(result, None, history)
        assert store is not None  # evidence needs S3, so it was opened
        recheck = await recheck_evidence(store, report_path, concurrency=settings.concurrency)
        return Checked(result, recheck, history)
