"""The exit codes of each command, as its help's epilog (the contract in one place each:
:mod:`batch.verdict` decides them, this says them)."""

from __future__ import annotations

__all__ = ["EPILOGS"]

_RUN = """\b
Exit codes:
  0  every session has a definitive answer (a status, or a per-session error)
  1  some sessions unresolved (retries used up, stopped, --time-budget, still
     pending after --settle) or a local write failed; a rerun resumes
  2  usage, configuration or input error: nothing was fetched
  3  access or credentials refused; what was fetched is in the report
  4  more than --max-error-rate of the sessions ended in errors
  5  stored audit evidence missing or changed in S3 (--verify-evidence)
  6  the service contradicts the application's decision (--fail-on-disagreement)
When several apply the first of 3, 1, 5, 6, 4 wins."""

_FOLLOW = """\b
Exit codes:
  0  stopped in good order (SIGTERM/SIGINT, --time-budget); every day published
  1  a report could not be published (kept locally; a restart publishes it)
  2  usage, configuration or SOURCE error (a restart will not cure it)
  3  access or credentials refused (needs a person)"""

_VERIFY = """\b
Exit codes:
  0  the report matches its manifest (and, with --evidence, every image is unchanged)
  1  it does not
  2  it cannot be read, or bad usage
  3  S3 refused access"""

_SUMMARIZE = """\b
Exit codes:
  0  summarized
  1  S3 failed (unreachable, server errors): a rerun may succeed
  2  a report cannot be read, or bad usage
  3  S3 refused access"""

_SQL = """\b
Exit codes:
  0  the query ran; its rows are on stdout
  1  S3 failed (unreachable, server errors): a rerun may succeed
  2  a report cannot be read, the query is not valid SQL, or bad usage
  3  S3 refused access"""

_SCHEMA = """\b
Exit codes:
  0  the table definition is on stdout
  2  bad usage (a location that is not s3://bucket/prefix/)"""

_DOCTOR = """\b
Exit codes:
  0  every check passed
  2  a setting, the region, the input or the output would stop a run
  3  the credentials are missing or refused, or the policy denies the call"""

_EMULATOR = """\b
Exit codes:
  0  stopped (SIGTERM/SIGINT)
  2  bad settings, or the port cannot be bound"""

EPILOGS = {
    "run": _RUN,
    "follow": _FOLLOW,
    "verify": _VERIFY,
    "summarize": _SUMMARIZE,
    "sql": _SQL,
    "schema": _SCHEMA,
    "doctor": _DOCTOR,
    "emulator": _EMULATOR,
}
