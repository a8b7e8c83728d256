"""Exit codes: how a run ended, mapped to the process's exit code in one place.

::

    0  every session has a definitive answer (a status, or a per-session error)
    1  some sessions are unresolved (retries exhausted, or the run was stopped);
       they are in the report with their last error and a rerun retries them
    2  usage, configuration or input error: nothing was fetched
    3  aborted on an access or credential error; what was fetched is in the report
    4  every session answered, but more than --max-error-rate of them ended in errors
    5  every session answered, but stored audit evidence is missing or changed in S3
       for some (--verify-evidence; error_code EvidenceMissing / EvidenceChanged)
"""

from __future__ import annotations

from batch.errors import AccessError, UsageError
from batch.model import RunSummary

__all__ = [
    "EXIT_ACCESS",
    "EXIT_ERROR_RATE",
    "EXIT_EVIDENCE",
    "EXIT_OK",
    "EXIT_UNRESOLVED",
    "EXIT_USAGE",
    "exit_code_for",
]

EXIT_OK, EXIT_UNRESOLVED, EXIT_USAGE, EXIT_ACCESS, EXIT_ERROR_RATE, EXIT_EVIDENCE = range(6)


def exit_code_for(  # noqa: PLR0911  # the exit-code table, one return per row
    outcome: RunSummary | BaseException, max_error_rate: float | None = None
) -> int:
    """The one mapping from how a run ended to the process exit code."""
    if isinstance(outcome, UsageError):
        return EXIT_USAGE
    if isinstance(outcome, AccessError):
        return EXIT_ACCESS
    if isinstance(outcome, BaseException):
        return EXIT_UNRESOLVED
    if outcome.aborted is not None or isinstance(outcome.publish_error, AccessError):
        return EXIT_ACCESS
    if outcome.unresolved or outcome.not_attempted or outcome.publish_error is not None:
        return EXIT_UNRESOLVED
    if outcome.evidence_problems:
        return EXIT_EVIDENCE
    if max_error_rate is not None and outcome.errors > max_error_rate * max(1, outcome.sessions):
        return EXIT_ERROR_RATE
    return EXIT_OK
