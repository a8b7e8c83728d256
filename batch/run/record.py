"""The last step of a session, and what makes a report whole: :class:`Recorder`.

The recorder holds the run's :class:`~batch.store.ledger.Ledger` (the kept answer of
every session the run touches: the existing report's row of it, the unfinished run's
journal's, this run's) and its checkpoint journal. It merges what earlier runs knew
(:meth:`Recorder.use_base`: only the report's rows of the run's sessions;
:meth:`Recorder.replay`), records each answer as it comes (:meth:`Recorder.record`: merged
into the ledger by the ranking rule, appended to the journal, counted), adds a
``NotAttempted`` row for every session the run did not get to (:meth:`Recorder.leftovers`)
and writes the report (:meth:`Recorder.commit`): the existing report streamed through
row group by row group with the ledger's rows merged in (:mod:`batch.store.merge`), so
every session of every earlier input stays, and none of them is held in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from batch.model import Outcome
from batch.run.progress import Tally
from batch.store.checkpoint import Journal, journal_path
from batch.store.ledger import Ledger, pending, unresolved
from batch.store.manifest import Manifest
from batch.store.merge import Base, merged_schema, rows_for, stream_merge
from batch.store.report import SCHEMA, Decorate, ReportWriter, outcome_row, revive
from batch.store.seal import Seals

__all__ = ["Recorder"]

Row = dict[str, Any]


class Recorder:
    """The ledger and the journal of one run; ``finished`` holds the IDs answered in it."""

    def __init__(  # the report's options, named
        self,
        report: Path,
        journal: Journal,
        tally: Tally,
        *,
        batch_rows: int,
        mode: int,
        schema: pa.Schema = SCHEMA,
        decorate: Decorate | None = None,
    ) -> None:
        self.report = report
        self.journal = journal
        self.tally = tally
        self.ledger = Ledger()
        self.finished: set[str] = set()
        self._batch_rows = batch_rows
        self._mode = mode
        self._run_schema, self._decorate = schema, decorate
        self.schema = schema  # the run's, merged with the existing report's (use_base)
        self.base = Base(None)  # the report merged into
        self.seals: Seals | None = None  # where committed reports are sealed, as location
        self.location = str(report)

    @classmethod
    def open(  # the report's options, named
        cls,
        report: Path,
        header: Mapping[str, Any],
        tally: Tally,
        *,
        must_match: Iterable[str] = (),
        batch_rows: int,
        mode: int,
        schema: pa.Schema = SCHEMA,
        decorate: Decorate | None = None,
    ) -> Recorder:
        """The recorder of ``report``, its journal opened (or started) with ``header``.

        ``schema`` and ``decorate`` are the report's (kept input columns, reconciliation):
        every row written goes through ``decorate``; the journal keeps the rows as fetched.
        """
        journal = Journal.open(journal_path(report), header, must_match=must_match, mode=mode)
        return cls(
            report,
            journal,
            tally,
            batch_rows=batch_rows,
            mode=mode,
            schema=schema,
            decorate=decorate,
        )

    def use_base(self, base: Base, session_ids: Collection[str]) -> None:
        """Merge into the report ``base``: its schema with the run's
        (:class:`~batch.store.merge.SchemaError` when a column's type cannot be), and its
        rows of ``session_ids`` into the ledger (the rest stream through at commit)."""
        self.schema = merged_schema(base.schema, self._run_schema)
        self.base = base
        self.load(rows_for(base, session_ids))

    def load(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Merge rows an earlier run made into the ledger."""
        for row in rows:
            self.ledger.add(row)

    def journaled(self) -> list[Row]:
        """The rows of the unfinished run's journal (merged by :meth:`replay`)."""
        return [revive(row) for row in self.journal.replay()]

    def replay(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Merge the journal's rows into the ledger, after the report's."""
        self.load(rows)

    def record(self, outcome: Outcome, paths: Mapping[str, str] | None = None) -> Row:
        """One answer: merged into the ledger and journaled; the row now kept."""
        kept = self.record_row(outcome_row(outcome, paths))
        if outcome.session_id not in self.finished:
            self.finished.add(outcome.session_id)
            self.tally.finished(outcome)
        return kept

    def record_row(self, row: Mapping[str, Any]) -> Row:
        """A row made by this run (an answer, or a kept answer with a local step redone)."""
        kept = self.ledger.add(row)
        self.journal.append(row)
        return kept

    def redone(self, row: Mapping[str, Any]) -> Row:
        """A kept answer whose local steps were redone: recorded and counted."""
        kept = self.record_row(row)
        self.finished.add(str(row["session_id"]))
        self.tally.done += 1
        return kept

    def leftovers(self, todo: Iterable[str], reason: str | None) -> Counter[str]:
        """A ``NotAttempted`` row for each session of ``todo`` still without an answer."""
        because = reason or "stopped"
        why = f"run ended before this session was fetched ({because}); a rerun fetches it"
        leftovers = Counter[str]()
        for session_id in todo:
            if session_id not in self.finished:
                kept = self.ledger.add(outcome_row(Outcome.not_attempted(session_id, why)))
                if kept.get("error_code") == "NotAttempted":
                    leftovers["NotAttempted"] += 1
        return leftovers

    def count(self, session_ids: Iterable[str]) -> None:
        """The tally's closing counts, from the rows kept for ``session_ids``."""
        t = self.tally
        t.by_status.clear()
        t.by_error.clear()
        t.done = t.unresolved = t.pending = 0
        for session_id in session_ids:
            row = self.ledger.get(session_id)
            code = row.get("error_code") if row is not None else "NotAttempted"
            if row is None or code == "NotAttempted":
                continue  # counted as a leftover
            t.done += 1
            if row.get("status") is not None:
                t.by_status[str(row["status"])] += 1
            if code is not None:
                t.by_error[str(code)] += 1
            if pending(row):
                t.pending += 1
            elif unresolved(row):
                t.unresolved += 1

    def commit(self, provenance: Mapping[str, Any], *, input_sha256: str) -> Manifest:
        """Write the report (atomically): the base streamed through, the ledger's rows
        merged in; its manifest. The journal's rows are in the report then: the journal
        keeps only its header."""
        writer = ReportWriter(
            self.report,
            batch_rows=self._batch_rows,
            mode=self._mode,
            schema=self.schema,
            decorate=self._decorate,
        )
        try:
            stream_merge(writer, self.base, self.ledger.by_session)
        except BaseException:
            writer.abandon()
            raise
        manifest = writer.commit(provenance, input_sha256=input_sha256)
        self.journal.reset()
        if self.seals is not None:
            self.seals.record(self.location, self.report)
        return manifest

    def abandon(self) -> None:
        """The run failed: keep the journal for a rerun (the report is left as it was).

        Quietly: this cleanup runs after the error that ended the run and must not hide it.
        """
        self.journal.close(quiet=True)
