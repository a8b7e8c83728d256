"""The local steps of a session: its evidence check and its image save, done or redone.

A fetched answer is irreplaceable, so nothing on these paths may end the run or lose it:
an evidence check that cannot be made leaves the session ``EvidenceUnverified``; an image
that cannot be saved (a 403 from ``--save-images s3://``, a full disk) is tried once more,
then its bytes go to an owner-only :class:`Spool` in the work directory and the session is
``ImageNotSaved``. Either way the answer is recorded.

A later run redoes only these steps on the kept row (:meth:`LocalSteps.redo`), with no
call to Rekognition: the result is rebuilt from the row
(:meth:`~batch.store.row.Row.result`), the evidence checked again, and images
saved from the spool (whose copy is removed once the redone row is journaled:
:meth:`LocalSteps.drop_saved`). Bytes that were never spooled cannot be saved any more:
the row says so; a run without ``--save-images`` leaves an ``ImageNotSaved`` row so.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from batch.aws.s3 import S3Store
from batch.engine.images import ImageSaver, inline_images
from batch.errors import AuditError
from batch.evidence import verify_evidence, with_evidence
from batch.logs import LOGGER
from batch.model import Evidence, Outcome, image_names
from batch.store.files import PRIVATE, atomic_write, private_dir
from batch.store.ledger import Rank, local_steps_due, rank
from batch.store.row import Row

__all__ = ["LocalSteps", "Spool", "evidence_due", "images_due", "spool_for"]

log = logging.getLogger(LOGGER)

_UNCHECKED = (None, "forbidden", "error")  # evidence statuses worth another HEAD


def spool_for(work_dir: Path, report: str) -> Spool:
    """The spool of the report named ``report`` (a path or an s3:// URL)."""
    key = hashlib.sha256(report.encode()).hexdigest()[:20]
    return Spool(work_dir / "spool" / key)


class Spool:
    """Owner-only copies of image bytes that could not be saved yet (0600 in 0700)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, session_id: str, name: str) -> Path:
        return self.folder / f"{session_id}-{name}.jpg"

    def keep(self, session_id: str, name: str, data: bytes) -> bool:
        """Keep a copy of ``data``; False if even that failed (the bytes are then lost)."""
        try:
            private_dir(self.folder, mode=PRIVATE)
            with atomic_write(self._path(session_id, name), mode=PRIVATE, what="spool") as f:
                f.write(data)
        except (AuditError, OSError) as exc:
            log.error("could not keep the image bytes of %s in the spool: %s", session_id, exc)  # noqa: TRY400  # one line, no traceback
            return False
        return True

    def take(self, session_id: str, name: str) -> bytes | None:
        try:
            return self._path(session_id, name).read_bytes()
        except OSError:
            return None

    def drop(self, session_id: str, name: str) -> None:
        self._path(session_id, name).unlink(missing_ok=True)


def evidence_due(row: Row) -> bool:
    """A kept result with an S3-stored image whose evidence was not (or could not be) seen."""
    result = row.result()
    if result is None or rank(row) != Rank.RESULT:
        return False
    found = row.evidence()
    return any(
        image.s3_bucket and (found[name].status if name in found else None) in _UNCHECKED
        for name, image in image_names(result)
    )


def images_due(row: Row) -> bool:
    """A kept result with an inline image that no saved file stands for."""
    result = row.result()
    if result is None or rank(row) != Rank.RESULT:
        return False
    saved = row.paths()
    return any(image.size is not None and name not in saved for name, image in image_names(result))


@dataclass(frozen=True, slots=True)
class LocalSteps:
    """The evidence check (``evidence_store``) and the image save (``saver``) of a run."""

    evidence_store: S3Store | None = None
    saver: ImageSaver | None = None
    spool: Spool | None = None

    def due(self, row: Row, *, upgrade: bool = False) -> bool:
        """Whether a kept row needs a local step this run can make.

        ``upgrade``: the row was made under settings without the step (a resume with
        ``--verify-evidence`` or ``--save-images`` added).
        """
        if not (upgrade or local_steps_due(row)):
            return False
        return (self.evidence_store is not None and evidence_due(row)) or (
            self.saver is not None and images_due(row)
        )

    async def check_evidence(self, outcome: Outcome) -> Outcome:
        """With the stored images' evidence, when asked to verify it and there is a result."""
        if self.evidence_store is None or outcome.result is None:
            return outcome
        try:
            found = await verify_evidence(self.evidence_store, outcome.result)
        except (AuditError, OSError) as exc:  # never lose the answer over a HEAD
            found = {
                name: Evidence("error", message=str(exc))
                for name, image in image_names(outcome.result)
                if image.s3_bucket
            }
        return with_evidence(outcome, found)

    async def save_images(self, outcome: Outcome) -> tuple[Outcome, dict[str, str] | None]:
        """The outcome and where its images went; an image not saved is spooled."""
        if self.saver is None:
            return outcome, None
        paths: dict[str, str] = {}
        failed: list[str] = []
        for name, data in inline_images(outcome):
            problem = await self._save(outcome.session_id, name, data, paths)
            if problem is not None:
                kept = self.spool is not None and self.spool.keep(outcome.session_id, name, data)
                where = "kept for a rerun" if kept else "NOT kept: they cannot be saved later"
                failed.append(f"{name}: {problem} (bytes {where})")
        return _unsaved(outcome, failed), paths

    async def _save(
        self, session_id: str, name: str, data: bytes, paths: dict[str, str]
    ) -> str | None:
        """Save one image, trying twice; None when saved, else what went wrong."""
        assert self.saver is not None
        problem = ""
        for _ in range(2):
            try:
                paths[name] = await self.saver.save_one(session_id, name, data)
            except (AuditError, OSError) as exc:
                problem = str(exc)
                continue
            return None
        return problem

    async def redo(self, row: Row) -> Row:
        """``row``'s kept answer with its local steps done again (no Rekognition call)."""
        result = row.result()
        assert result is not None, "only results have local steps"
        evidence = row.evidence() or None
        outcome = Outcome(
            result.session_id, result, None, None, row.attempts, row.fetched_at, True, evidence
        )
        if self.evidence_store is not None and evidence_due(row):
            outcome = await self.check_evidence(outcome)
        elif evidence:
            outcome = with_evidence(outcome, evidence)
        paths = row.paths()
        if images_due(row):
            outcome = (
                await self._save_spooled(outcome, paths) if self.saver else _kept(outcome, row)
            )
        return row.with_local_steps(Row.of(outcome, paths))

    def drop_saved(self, row: Row) -> None:
        """Remove the spool copies of the images ``row`` says were saved.

        Called once ``row`` (a :meth:`redo`'s) is journaled, never before: until then the
        spool copy is the only one a killed run could find again.
        """
        if self.spool is not None:
            for name in row.paths():
                self.spool.drop(row.session_id, name)

    async def _save_spooled(self, outcome: Outcome, paths: dict[str, str]) -> Outcome:
        """Save each unsaved inline image from the spool (its copy stays until the row is
        journaled: :meth:`drop_saved`); say which could not be."""
        assert outcome.result is not None
        session_id = outcome.session_id
        failed: list[str] = []
        for name, image in image_names(outcome.result):
            if image.size is None or name in paths:
                continue
            data = self.spool.take(session_id, name) if self.spool is not None else None
            if data is None:
                failed.append(
                    f"{name}: the image bytes were not kept (fetched without --save-images, "
                    "or their spool copy is gone): they cannot be saved now"
                )
                continue
            problem = await self._save(session_id, name, data, paths)
            if problem is not None:
                failed.append(f"{name}: {problem} (bytes kept for a rerun)")
        return _unsaved(outcome, failed)


def _kept(outcome: Outcome, row: Row) -> Outcome:
    """``outcome`` still ``ImageNotSaved`` as ``row`` was, when this run cannot save its
    images (no ``--save-images``): the spool keeps their bytes for a run that can."""
    if row.error_code != "ImageNotSaved":
        return outcome
    return replace(outcome, error_code=row.error_code, error_message=row.error_message, final=False)


def _unsaved(outcome: Outcome, failed: list[str]) -> Outcome:
    """``outcome`` marked ``ImageNotSaved`` when ``failed`` names an image."""
    if not failed:
        return outcome
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    message = f"could not save the images: {failed[0]}{more}"
    return replace(outcome, error_code="ImageNotSaved", error_message=message, final=False)
