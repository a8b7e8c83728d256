"""What the capture service shows while it runs: :class:`Figures`, a line, metrics.

- files seen (and rejected as bad input), sessions asked (each new ID once), requests;
- pending: sessions waiting for their next settle turn;
- captured: sessions whose answer is a result (``SUCCEEDED``/``FAILED``);
- expired before capture: sessions whose *first* answer was already ``EXPIRED`` or gone
  (``SessionNotFoundException``): asked too late to see a result;
- capture lag: from the moment a file was found to its session's first answer;
- where every asked session stands, by its kept answer (:meth:`Figures.moved`), so the
  figures add up: asked = unanswered + captured + expired + gone + pending + errors
  (pending: last answered CREATED/IN_PROGRESS, ``settle_stopped`` of them no longer asked).

The same figures go to the progress line (or ``progress`` JSON event) every
``log_interval`` and to ``--metrics-file`` (Prometheus text, for node_exporter's textfile
collector) at every publish.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch.reports.metrics import gauge, write_textfile
from batch.store.files import PRIVATE
from batch.store.ledger import Answer, Rank, rank

__all__ = ["STANDINGS", "Figures", "standing_of", "write_follow_metrics"]


@dataclass
class Figures:
    """Running counts of a ``follow`` service."""

    files_seen: int = 0
    files_rejected: int = 0
    sessions_asked: int = 0
    expired_before_capture: int = 0
    requests: int = 0
    throttled: int = 0
    backlog: int = 0
    settle_stopped: int = 0
    standing: Counter[str] = field(default_factory=Counter)  # sessions by STANDINGS
    publishes: int = 0
    lag_count: int = 0
    lag_total: float = 0.0
    lag_max: float = 0.0

    def moved(self, before: str | None, now: str) -> None:
        """A session went from standing ``before`` (None: newly asked) to ``now``."""
        if before is not None:
            self.standing[before] -= 1
        self.standing[now] += 1

    @property
    def captured(self) -> int:
        return self.standing["captured"]

    @property
    def pending(self) -> int:
        return self.standing["pending"]

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
            **{name: self.standing[name] for name in STANDINGS},
            "settle_stopped": self.settle_stopped,
            "backlog": self.backlog,
            "expired_before_capture": self.expired_before_capture,
            "requests": self.requests,
            "throttled": self.throttled,
            "capture_lag_mean_seconds": round(self.lag_mean, 3),
            "capture_lag_max_seconds": round(self.lag_max, 3),
            "publishes": self.publishes,
        }

    def line(self) -> str:
        by = self.standing
        return (
            f"follow: {self.files_seen} files ({self.files_rejected} rejected), "
            f"{self.sessions_asked} sessions asked = {by['unanswered']} unanswered "
            f"({self.backlog} waiting) + {by['captured']} captured + {by['expired']} expired "
            f"+ {by['gone']} gone + {by['pending']} pending ({self.settle_stopped} no longer "
            f"asked: settle time over) + {by['errors']} errors, "
            f"{self.expired_before_capture} expired before capture, "
            f"capture lag {self.lag_mean:.1f}s mean / {self.lag_max:.1f}s max, "
            f"{self.requests} requests ({self.throttled} throttled)"
        )


STANDINGS = ("unanswered", "captured", "expired", "gone", "pending", "errors")

_BY_RANK = {
    Rank.RESULT: "captured",
    Rank.EXPIRED: "expired",
    Rank.GONE: "gone",
    Rank.CREATED: "pending",
    Rank.IN_PROGRESS: "pending",
}


def standing_of(row: Answer) -> str:
    """Where a session stands by its kept row (one of :data:`STANDINGS`)."""
    return _BY_RANK.get(rank(row), "errors")


_HELP = {
    "files_seen": "Source files found since the service started.",
    "files_rejected": "Source files set aside as bad input.",
    "sessions_asked": "Sessions asked for the first time.",
    "unanswered": "Sessions asked that have no answer yet.",
    "pending": "Sessions last answered CREATED/IN_PROGRESS (being settled, or settle over).",
    "settle_stopped": "Pending sessions no longer asked: their settle time is over.",
    "expired": "Sessions whose kept answer is EXPIRED.",
    "gone": "Sessions the service no longer knows (SessionNotFoundException).",
    "errors": "Sessions whose kept answer is an error (retries used up).",
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
