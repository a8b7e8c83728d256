"""Prometheus text-format metrics for node_exporter's textfile collector.

Written once at the end of a run, atomically (temporary file, then rename), so the
collector never reads half a file. ``liveness_audit_last_success_timestamp_seconds`` is
carried over from the previous file when this run did not succeed, so an alert on
"no success for 26 hours" keeps working across failed nights.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from batch.errors import OutputError
from batch.model import RunSummary
from batch.store.files import PRIVATE, atomic_write

__all__ = ["gauge", "write_metrics", "write_textfile"]

_LAST_SUCCESS = "liveness_audit_last_success_timestamp_seconds"


def gauge(name: str, text: str, value: str) -> list[str]:
    """One gauge in the text format: its ``HELP``, its ``TYPE`` and its sample line."""
    return [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {value}"]


def write_textfile(path: Path, lines: list[str], *, mode: int = PRIVATE) -> None:
    """``lines`` as one textfile, written atomically; OutputError naming the file."""
    try:
        with atomic_write(path, mode=mode, what="metrics file") as f:
            f.write(("\n".join(lines) + "\n").encode())
    except (OSError, OutputError) as exc:
        raise OutputError(f"cannot write the metrics file {path}: {exc}") from None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _previous_success(path: Path) -> float | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    match = re.search(rf"^{_LAST_SUCCESS} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def _quota_lines(summary: RunSummary) -> list[str]:
    """The quota the run knew of, its cap and the share it used (none: no quota known)."""
    use = summary.quota
    if use is None:
        return []
    return [
        *gauge(
            "liveness_audit_quota_requests_per_second",
            "The quota the last run knew of.",
            f"{use.quota:g}",
        ),
        *gauge(
            "liveness_audit_quota_cap_requests_per_second",
            "The most the last run allowed itself (quota x share).",
            f"{use.cap:g}",
        ),
        *gauge(
            "liveness_audit_quota_used_ratio",
            "Requests/s of the last run over the quota.",
            f"{use.used:.4f}",
        ),
    ]


def _reconciled(summary: RunSummary) -> list[str]:
    """The application's decisions against the service's, when the run reconciled them."""
    found = summary.reconciliation
    if found is None:
        return []
    counts = {
        "agreed": found.agreed,
        "disagreed": found.disagreed,
        "unverifiable": found.unverifiable,
    }
    return [
        "# HELP liveness_audit_reconciled Application decisions against the service's answers.",
        "# TYPE liveness_audit_reconciled gauge",
        *(f'liveness_audit_reconciled{{outcome="{k}"}} {n}' for k, n in counts.items()),
        "# HELP liveness_audit_reconcile_bad_input Rows whose application decision was unusable.",
        "# TYPE liveness_audit_reconcile_bad_input gauge",
        f"liveness_audit_reconcile_bad_input {found.bad_input}",
    ]


def _run_lines(summary: RunSummary) -> list[str]:
    """The gauges of a run that got to fetching: outcomes, time, calls, quota, reconciliation."""
    lines = [
        "# HELP liveness_audit_sessions Sessions by outcome in the last run.",
        "# TYPE liveness_audit_sessions gauge",
    ]
    for status, n in sorted(summary.by_status.items()):
        lines.append(f'liveness_audit_sessions{{outcome="status",status="{_label(status)}"}} {n}')
    for code, n in sorted(summary.by_error.items()):
        lines.append(f'liveness_audit_sessions{{outcome="error",error_code="{_label(code)}"}} {n}')
    lines += [
        "# HELP liveness_audit_duration_seconds Wall time of the last run.",
        "# TYPE liveness_audit_duration_seconds gauge",
        f"liveness_audit_duration_seconds {summary.wall:.3f}",
        "# HELP liveness_audit_requests Calls made by the last run.",
        "# TYPE liveness_audit_requests gauge",
        f"liveness_audit_requests {summary.requests}",
        "# HELP liveness_audit_throttled Calls of the last run answered with throttling.",
        "# TYPE liveness_audit_throttled gauge",
        f"liveness_audit_throttled {summary.throttled}",
        *_quota_lines(summary),
    ]
    return lines + _reconciled(summary)


def write_metrics(
    path: Path, summary: RunSummary | None, exit_code: int, *, mode: int = PRIVATE
) -> None:
    """Write the metrics of a run (``summary`` None: it stopped before fetching)."""
    now = time.time()
    last_success = now if exit_code == 0 else _previous_success(path)
    lines = [] if summary is None else _run_lines(summary)
    lines += [
        "# HELP liveness_audit_exit_code Exit code of the last run.",
        "# TYPE liveness_audit_exit_code gauge",
        f"liveness_audit_exit_code {exit_code}",
        "# HELP liveness_audit_last_run_timestamp_seconds When the last run ended.",
        "# TYPE liveness_audit_last_run_timestamp_seconds gauge",
        f"liveness_audit_last_run_timestamp_seconds {now:.3f}",
    ]
    if last_success is not None:
        lines += [
            "# HELP liveness_audit_last_success_timestamp_seconds When a run last exited 0.",
            "# TYPE liveness_audit_last_success_timestamp_seconds gauge",
            f"{_LAST_SUCCESS} {last_success:.3f}",
        ]
    write_textfile(path, lines, mode=mode)
