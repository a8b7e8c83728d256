"""The work on one session, as a short chain: fetch -> evidence -> images -> record.

:class:`SessionSteps` is what each worker of the pool runs for a session ID. Every step
takes the session's :class:`~batch.model.Outcome` and hands on a (possibly amended) one;
the evidence and image steps are :class:`~batch.engine.local.LocalSteps` (nothing on them
ends the run or loses the answer). Only an :class:`~batch.errors.AccessError` from the
fetch (not about this session) escapes, and it stops the whole run. The call returns the
row the report now keeps for the session (:mod:`batch.store.ledger`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from batch.engine.local import LocalSteps
from batch.model import Outcome
from batch.store.ledger import Answer

__all__ = ["Fetches", "SessionSteps"]

Record = Callable[[Outcome, Mapping[str, str] | None], Answer]


class Fetches(Protocol):
    """Step one (:class:`batch.engine.fetch.Fetcher`, or one per region)."""

    async def fetch(self, session_id: str) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class SessionSteps:
    """``await steps(session_id)``: fetch it, check its evidence, save its images, record it.

    ``local`` holds the evidence store (``--verify-evidence``) and the image saver
    (``--save-images``), each None when not asked for.
    """

    fetcher: Fetches
    record: Record
    local: LocalSteps = field(default_factory=LocalSteps)

    async def __call__(self, session_id: str) -> Answer:
        outcome = await self.fetcher.fetch(session_id)
        outcome = await self.local.check_evidence(outcome)
        outcome, paths = await self.local.save_images(outcome)
        return self.record(outcome, paths)
