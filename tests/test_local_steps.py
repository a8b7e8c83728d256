"""A kept answer's local steps redone (batch/engine/local.py): what a redo cannot do stays
said, and a spooled image's bytes are never left without a copy.

Unit tests on the real spool and folder saver in a temporary folder; the redone row is
journaled by the caller (``AuditRun``) between :meth:`LocalSteps.redo` and
:meth:`LocalSteps.drop_saved`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from batch.engine.images import FolderSaver
from batch.engine.local import LocalSteps, Spool
from batch.store.ledger import local_steps_due, unresolved
from batch.store.row import Row
from tests.samples import outcomes

UNSAVED = "could not save the images: reference: disk full (bytes kept for a rerun)"
BYTES = {"reference": b"reference bytes", "audit-1": b"audit bytes"}


def unsaved_row() -> Row:
    """A result whose two inline images (reference, audit-1) could not be saved."""
    row = Row.of(outcomes()[0])
    assert not row.paths()
    return replace(row, error_code="ImageNotSaved", error_message=UNSAVED)


def spooled(folder: Path) -> Spool:
    spool = Spool(folder)
    for name, data in BYTES.items():
        assert spool.keep("a", name, data)
    return spool


def test_a_redo_that_cannot_save_images_keeps_image_not_saved_and_its_message(
    tmp_path: Path,
) -> None:
    """Resumed with --verify-evidence but without --save-images: the row stays unsaved."""
    spool = spooled(tmp_path / "spool")
    row = unsaved_row()

    redone = asyncio.run(LocalSteps(spool=spool).redo(row))

    assert redone.error_code == "ImageNotSaved"
    assert redone.error_message == UNSAVED
    assert unresolved(redone)
    assert local_steps_due(redone), "a later run with --save-images saves them"
    assert {spool.take("a", name) for name in BYTES} == set(BYTES.values())


def test_a_redo_of_a_row_without_an_error_adds_none(tmp_path: Path) -> None:
    row = Row.of(outcomes()[0])  # fetched without --save-images: nothing was promised
    redone = asyncio.run(LocalSteps(spool=Spool(tmp_path / "spool")).redo(row))
    assert redone == row


def test_the_spool_copy_outlives_the_redo_until_the_row_is_journaled(
    tmp_path: Path,
) -> None:
    spool = spooled(tmp_path / "spool")
    steps = LocalSteps(saver=FolderSaver(tmp_path / "images"), spool=spool)

    redone = asyncio.run(steps.redo(unsaved_row()))

    assert redone.error_code is None
    assert set(redone.paths()) == set(BYTES)
    for name, data in BYTES.items():
        assert Path(redone.paths()[name]).read_bytes() == data
        assert spool.take("a", name) == data, "dropped before the row was journaled"

    steps.drop_saved(redone)  # what the run does once ``recorder.redone`` journaled it

    assert all(spool.take("a", name) is None for name in BYTES)


def test_drop_saved_leaves_the_copy_of_an_image_still_unsaved(tmp_path: Path) -> None:
    spool = spooled(tmp_path / "spool")
    row = unsaved_row()
    assert row.reference is not None
    saved = replace(row, reference=replace(row.reference, image_path="/x"))
    assert set(saved.paths()) == {"reference"}

    LocalSteps(spool=spool).drop_saved(saved)

    assert spool.take("a", "reference") is None
    assert spool.take("a", "audit-1") == BYTES["audit-1"]
