"""The last step of a session, and what makes a report whole: :class:`Recorder`.

The recorder holds the report writer and the checkpoint journal of one run. It copies
the answers of earlier runs from the journal (:meth:`Recorder.resume`), records each
session as it finishes (:meth:`Recorder.record`: a report row, a journal line when the
answer is final, the tally), and at the end adds a ``NotAttempted`` row for every session
the run did not get to (:meth:`Recorder.leftovers`), so the report always holds every
unique session exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from batch.model import Outcome
from batch.run.progress import Tally
from batch.store.checkpoint import Journal, journal_path
from batch.store.inputs import Plan
from batch.store.manifest import Manifest
from batch.store.report import SCHEMA, Decorate, ReportWriter, invalid_row, outcome_row, revive

__all__ = ["Recorder"]


class Recorder:
    """Report rows and checkpoint lines of one run; ``finished`` holds the IDs recorded."""

    def __init__(self, writer: ReportWriter, journal: Journal, tally: Tally) -> None:
        self.writer = writer
        self.journal = journal
        self.tally = tally
        self.finished: set[str] = set()

    @classmethod
    def open(  # the report's options, named
        cls,
        report: Path,
        plan: Plan,
        tally: Tally,
        *,
        batch_rows: int,
        fresh: bool,
        mode: int,
        schema: pa.Schema = SCHEMA,
        decorate: Decorate | None = None,
    ) -> Recorder:
        """A writer for ``report`` and its journal (new when ``fresh``), files of ``mode``.

        ``schema`` and ``decorate`` are the report's (kept input columns, reconciliation):
        every row written goes through ``decorate``; the journal keeps the rows as fetched.
        """
        writer = ReportWriter(
            report, batch_rows=batch_rows, mode=mode, schema=schema, decorate=decorate
        )
        try:
            journal = Journal.open(journal_path(report), _identity(plan), fresh=fresh, mode=mode)
        except BaseException:
            writer.abandon()
            raise
        return cls(writer, journal, tally)

    def resume(self, plan: Plan) -> list[str]:
        """Rows for invalid cells and earlier answers; the valid IDs still to fetch."""
        for invalid in plan.invalid:
            self.writer.add(invalid_row(invalid))
        wanted = set(plan.valid)
        for row in map(revive, self.journal.replay()):
            session_id = row["session_id"]
            if session_id in wanted and session_id not in self.finished:
                self.writer.add(row)
                self.finished.add(session_id)
                self.tally.replayed(row.get("status"), row.get("error_code"))
        return [sid for sid in plan.valid if sid not in self.finished]

    def record(self, outcome: Outcome, paths: Mapping[str, str] | None = None) -> None:
        row = outcome_row(outcome, paths)
        self.writer.add(row)
        if outcome.final:
            self.journal.append(row)
        self.finished.add(outcome.session_id)
        self.tally.finished(outcome)

    def leftovers(self, todo: Iterable[str], reason: str | None) -> Counter[str]:
        """A ``NotAttempted`` row for each session of ``todo`` not recorded; their count."""
        because = reason or "stopped"
        why = f"run ended before this session was fetched ({because}); a rerun fetches it"
        leftovers = Counter[str]()
        for session_id in todo:
            if session_id not in self.finished:
                self.writer.add(outcome_row(Outcome.not_attempted(session_id, why)))
                leftovers["NotAttempted"] += 1
        return leftovers

    def commit(self, provenance: Mapping[str, Any], *, input_sha256: str) -> Manifest:
        return self.writer.commit(provenance, input_sha256=input_sha256)

    def abandon(self) -> None:
        """The run failed: drop the unfinished report, keep the journal for a rerun.

        Quietly: this cleanup runs after the error that ended the run and must not hide it.
        """
        self.writer.abandon()
        self.journal.close(quiet=True)


def _identity(plan: Plan) -> dict[str, str]:
    """What a checkpoint must match to be resumed: the same input read the same way."""
    return {"input_sha256": plan.sha256, "input_column": plan.column, "input_format": plan.format}
