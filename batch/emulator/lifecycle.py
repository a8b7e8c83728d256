"""A Face Liveness session's life: created, started, finished or expired, then gone.

A :class:`Plan` says when (in emulator seconds since the last reset) a session was
created, when its user starts and finishes, and how the check ends. The status it answers
at a moment is a pure function of the plan, the moment and the lifetime
(:func:`status_at`), so a test can compute every answer without asking the emulator:

* ``CREATED`` from creation until the user starts (never starts: ``start_after`` None);
* ``IN_PROGRESS`` from the start until the finish;
* the plan's ``outcome`` (``SUCCEEDED``/``FAILED``) from the finish;
* ``EXPIRED`` from ``expire_at`` for a session not finished by then;
* gone (``None``: ``SessionNotFoundException``) from ``lifetime`` on.

``lifetime`` None is the timeless emulator: nothing expires or disappears.
:class:`Sessions` holds the sessions created while the emulator runs, with IDs derived
from ``(seed, n)`` so two emulators with one seed create the same IDs in the same order.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = ["FATES", "Plan", "Sessions", "expire_point", "status_at", "unit"]

Outcome = Literal["SUCCEEDED", "FAILED"]
# What a created session comes to: a result, or EXPIRED (never finished).
FATES = ("SUCCEEDED", "FAILED", "EXPIRED")


def unit(*parts: object) -> float:
    """A number in [0, 1) derived from ``parts``: the emulator's deterministic dice."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8]) / 2**64


@dataclass(frozen=True, kw_only=True)
class Plan:
    """One session's timeline; times are seconds (``created_at``: emulator time)."""

    created_at: float
    start_after: float | None
    finish_after: float | None
    outcome: Outcome | None
    region: str | None = None

    def __post_init__(self) -> None:
        if self.start_after is not None and self.start_after < 0:
            raise ValueError(f"start_after must not be negative, got {self.start_after!r}")
        if self.finish_after is not None:
            if self.start_after is None or self.finish_after < self.start_after:
                raise ValueError("finish_after needs a start_after no later than it")
            if self.outcome is None:
                raise ValueError("a session that finishes needs an outcome")


def expire_point(lifetime: float | None, expire_unfinished: float | None) -> float | None:
    """Seconds after creation at which an unfinished session answers EXPIRED."""
    if expire_unfinished is not None:
        return expire_unfinished
    return None if lifetime is None else lifetime / 2


def status_at(
    plan: Plan, now: float, lifetime: float | None, expire_unfinished: float | None = None
) -> str | None:
    """The session's status at emulator time ``now`` (None: its results are gone)."""
    age = now - plan.created_at
    if lifetime is not None and age >= lifetime:
        return None
    expire_at = expire_point(lifetime, expire_unfinished)
    finish = plan.finish_after
    if finish is not None and (expire_at is None or finish < expire_at) and age >= finish:
        return plan.outcome
    if expire_at is not None and age >= expire_at:
        return "EXPIRED"
    if plan.start_after is not None and age >= plan.start_after:
        return "IN_PROGRESS"
    return "CREATED"


class Sessions:
    """The sessions created while the emulator runs, in order of creation."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._plans: dict[str, Plan] = {}

    def new_id(self) -> str:
        digest = hashlib.sha256(f"new/{self.seed}/{len(self._plans)}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def add(self, session_id: str, plan: Plan) -> None:
        self._plans[session_id] = plan

    def get(self, session_id: str) -> Plan | None:
        return self._plans.get(session_id)

    def __len__(self) -> int:
        return len(self._plans)

    def __iter__(self) -> Iterator[tuple[str, Plan]]:
        return iter(self._plans.items())
