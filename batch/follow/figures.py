"""What the capture service shows while it runs: :class:`Figures`, a line, metrics.

- files seen (and rejected as bad input), sessions asked (each new ID once), requests;
- pending: sessions waiting for their next settle turn;
- captured: sessions whose answer is a result (``SUCCEEDED``/``FAILED``);
- expired before capture: sessions whose *first* answer was already ``EXPIRED`` or gone
  (``SessionNotFoundException``): asked too late to see a result;
- capture lag: from the moment a file was found to its session's first answer.

The same figures go to the progress line (or ``progress`` JSON event) every
``log_interval`` and to ``--metrics-file`` (Prometheus text, for node_exporter's textfile
collector) at every publish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch.reports.metrics import gauge, write_textfile
from batch.store.files import PRIVATE

__all__ = ["Figures", "write_follow_metrics"]


@dataclass
class Figures:
    """Running counts of a ``follow`` service."""

    files_seen: int = 0
    files_rejected: int = 0
    sessions_asked: int = 0
    captured: int = 0
    expired_before_capture: int = 0
    requests: int = 0
    throttled: int = 0
    pending: int = 0
    backlog: int = 0
    publishes: int = 0
    lag_count: int = 0
    lag_total: float = 0.0
    lag_max: float = 0.0

    def lag(self, seconds: float) -> None:
        self.lag_count += 1
        self.lag_total += seconds
        self.lag_max = max(self.lag_max, seconds)

    @property
    def lag_mean(self) -> float:
        return self.lag_total / self.lag_count if self.lag_count else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files_seen": self.files_seen,
            "files_rejected": self.files_rejected,
            "sessions_asked": self.sessions_asked,
            "pending": self.pending,
            "backlog": self.backlog,
            "captured": self.captured,
            "expired_before_capture": self.expired_before_capture,
            "requests": self.requests,
            "throttled": self.throttled,
            "capture_lag_mean_seconds": round(self.lag_mean, 3),
            "capture_lag_max_seconds": round(self.lag_max, 3),
            "publishes": self.publishes,
        }

    def line(self) -> str:
        return (
            f"follow: {self.files_seen} files ({self.files_rejected} rejected), "
            f"{self.sessions_asked} sessions asked, {self.backlog} waiting, "
            f"{self.pending} pending, {self.captured} captured, "
            f"{self.expired_before_capture} expired before capture, "
            f"capture lag {self.lag_mean:.1f}s mean / {self.lag_max:.1f}s max, "
            f"{self.requests} requests ({self.throttled} throttled)"
        )


_HELP = {
    "files_seen": "Source files found since the service started.",
    "files_rejected": "Source files set aside as bad input.",
    "sessions_asked": "Sessions asked for the first time.",
    "pending": "Sessions waiting to be asked again (CREATED/IN_PROGRESS).",
    "backlog": "New sessions not asked yet.",
    "captured": "Sessions captured with a result (SUCCEEDED/FAILED).",
    "expired_before_capture": "Sessions already EXPIRED or gone at their first answer.",
    "requests": "Calls made to Rekognition.",
    "throttled": "Calls answered with throttling.",
    "capture_lag_mean_seconds": "Mean time from a file found to its sessions' first answer.",
    "capture_lag_max_seconds": "Longest time from a file found to a first answer.",
    "publishes": "Reports published.",
}


def write_follow_metrics(path: Path, figures: Figures, *, up: bool, mode: int = PRIVATE) -> None:
    """The figures as Prometheus gauges ``liveness_audit_follow_*``, written atomically."""
    lines: list[str] = []
    for name, value in figures.as_dict().items():
        lines += gauge(f"liveness_audit_follow_{name}", _HELP[name], str(value))
    lines += gauge(
        "liveness_audit_follow_up", "1 while the service runs, 0 once it stopped.", str(int(up))
    )
    lines += gauge(
        "liveness_audit_follow_last_publish_timestamp_seconds",
        "When it last published.",
        f"{time.time():.3f}",
    )
    write_textfile(path, lines, mode=mode)
