"""The work on one session, as a short chain: fetch -> evidence -> images -> record.

:class:`SessionSteps` is what each worker of the pool runs for a session ID. Every step
takes the session's :class:`~batch.model.Outcome` and hands on a (possibly amended) one;
only an :class:`~batch.errors.AccessError` (not about this session) escapes, and it stops
the whole run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from batch.aws.s3 import S3Store
from batch.errors import ServiceError
from batch.evidence import verify_evidence, with_evidence
from batch.model import Outcome
from batch.run.images import ImageSaver

__all__ = ["Fetches", "SessionSteps"]

Record = Callable[[Outcome, Mapping[str, str] | None], None]


class Fetches(Protocol):
    """Step one (:class:`batch.run.fetch.Fetcher`, or one per region)."""

    async def fetch(self, session_id: str) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class SessionSteps:
    """``await steps(session_id)``: fetch it, check its evidence, save its images, record it.

    ``evidence_store`` is set with ``--verify-evidence``; ``saver`` with ``--save-images``.
    """

    fetcher: Fetches
    record: Record
    evidence_store: S3Store | None = None
    saver: ImageSaver | None = None

    async def __call__(self, session_id: str) -> None:
        outcome = await self.fetcher.fetch(session_id)
        outcome = await self.check_evidence(outcome)
        outcome, paths = await self.save_images(outcome)
        self.record(outcome, paths)

    async def check_evidence(self, outcome: Outcome) -> Outcome:
        """With the stored images' evidence, when asked to verify it and there is a result."""
        if self.evidence_store is None or outcome.result is None:
            return outcome
        return with_evidence(outcome, await verify_evidence(self.evidence_store, outcome.result))

    async def save_images(self, outcome: Outcome) -> tuple[Outcome, Mapping[str, str] | None]:
        """The outcome and where its images went; a failed save makes it unresolved."""
        if self.saver is None:
            return outcome, None
        try:
            return outcome, await self.saver.save(outcome)
        except (ServiceError, OSError) as exc:
            message = f"could not save the images: {exc}"
            unsaved = replace(
                outcome, error_code="ImageNotSaved", error_message=message, final=False
            )
            return unsaved, None
