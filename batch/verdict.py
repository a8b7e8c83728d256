"""How a run ended: its exit code and its end-of-run message, decided in one place.

::

    0  every session has a definitive answer (a status, or a per-session error)
    1  some sessions are unresolved (retries exhausted, or the run was stopped), or
       still pending after settling (CREATED/IN_PROGRESS); they are in the report with
       their last answer and a rerun asks again (with ``--settle 0`` the run did not
       wait: pending sessions are counted, but do not make the exit code); or a local
       write failed (disk full: StorageError) and the run stopped, keeping its
       checkpoint, so a rerun once there is space resumes
    2  usage, configuration or input error: nothing was fetched
    3  aborted on an access or credential error; what was fetched is in the report
    4  every session answered, but more than --max-error-rate of them ended in errors
    5  every session answered, but stored audit evidence is missing or changed in S3
       for some (--verify-evidence; error_code EvidenceMissing / EvidenceChanged)
    6  every session answered, but the service's answer contradicts the application's
       decision for some (--fail-on-disagreement; agrees = false in the report)

When several apply the first of 3, 1, 5, 6, 4 wins. :func:`verdict` walks that ladder once
and returns both the code and what to tell the operator, so the two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from batch.errors import AccessError, AuditError, StorageError, UsageError
from batch.model import RunSummary

__all__ = [
    "EXIT_ACCESS",
    "EXIT_DISAGREEMENT",
    "EXIT_ERROR_RATE",
    "EXIT_EVIDENCE",
    "EXIT_OK",
    "EXIT_UNRESOLVED",
    "EXIT_USAGE",
    "Verdict",
    "exit_code_for",
    "verdict",
]

EXIT_OK, EXIT_UNRESOLVED, EXIT_USAGE, EXIT_ACCESS, EXIT_ERROR_RATE, EXIT_EVIDENCE = range(6)
EXIT_DISAGREEMENT = 6


@dataclass(frozen=True, slots=True)
class Verdict:
    """The exit ``code``, and either the ``error`` that decided it or a ``message``.

    ``error`` is shown as an error line (with its hint); ``message`` is a plain line for
    stderr; neither is set when the run ended well.
    """

    code: int
    message: str | None = None
    error: AuditError | None = None


def verdict(
    outcome: RunSummary | BaseException,
    max_error_rate: float | None = None,
    *,
    fail_on_disagreement: bool = False,
) -> Verdict:
    """The one mapping from how a run ended to its exit code and closing words."""
    if isinstance(outcome, BaseException):
        error = outcome if isinstance(outcome, AuditError) else None
        if isinstance(outcome, UsageError):
            return Verdict(EXIT_USAGE, error=error)
        if isinstance(outcome, AccessError):
            return Verdict(EXIT_ACCESS, error=error)
        if isinstance(outcome, StorageError):  # stopped in good order: the rerun resumes
            return Verdict(EXIT_UNRESOLVED, error=error)
        return Verdict(EXIT_UNRESOLVED, error=error)
    return _summary_verdict(outcome, max_error_rate, fail_on_disagreement)


def _summary_verdict(  # noqa: PLR0911  # the exit-code table, one return per row
    summary: RunSummary, max_error_rate: float | None, fail_on_disagreement: bool
) -> Verdict:
    if summary.aborted is not None:
        return Verdict(EXIT_ACCESS, error=summary.aborted)
    if summary.publish_error is not None:
        access = isinstance(summary.publish_error, AccessError)
        return Verdict(EXIT_ACCESS if access else EXIT_UNRESOLVED, error=summary.publish_error)
    waited = summary.pending if summary.settle > 0 else 0
    if summary.unresolved or summary.not_attempted or waited:
        left = summary.unresolved + summary.not_attempted
        stopped = f"run stopped ({summary.stop_reason}); " if summary.stop_reason else ""
        unresolved = (
            f"{left} sessions unresolved (see error_code in the report); "
            "a rerun of the same command retries them and keeps the rest"
        )
        still = f"{waited} sessions still pending: a rerun asks again"
        parts = [unresolved] * bool(left) + [still] * bool(waited)
        return Verdict(EXIT_UNRESOLVED, stopped + "; ".join(parts))
    if summary.evidence_problems:
        return Verdict(
            EXIT_EVIDENCE,
            f"stored evidence is missing or changed for {summary.evidence_problems} sessions "
            "(error_code EvidenceMissing / EvidenceChanged in the report)",
        )
    if fail_on_disagreement and summary.disagreements:
        return Verdict(
            EXIT_DISAGREEMENT,
            f"the service's answer contradicts the application's decision for "
            f"{summary.disagreements} sessions (agrees = false in the report; "
            "liveness-audit summarize lists them first)",
        )
    if max_error_rate is not None and summary.errors > max_error_rate * max(1, summary.sessions):
        return Verdict(
            EXIT_ERROR_RATE,
            f"{summary.errors} of {summary.sessions} sessions ended in errors, "
            f"more than --max-error-rate {max_error_rate:g} allows",
        )
    return Verdict(EXIT_OK)


def exit_code_for(outcome: RunSummary | BaseException, max_error_rate: float | None = None) -> int:
    """The exit code alone (:func:`verdict`'s ``code``)."""
    return verdict(outcome, max_error_rate).code
