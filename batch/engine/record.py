"""The last step of a session, and what makes a report whole: :class:`Recorder`.

The recorder holds the run's kept answers (:class:`~batch.store.ledger.Kept`: of
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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from batch.engine.progress import Tally
from batch.model import Outcome
from batch.store.checkpoint import Journal, journal_path
from batch.store.ids import SessionIds
from batch.store.ledger import (
    Brief,
    Details,
    Kept,
    KeptTable,
    fold,
    gone_while_pending,
    marked_gone,
    own,
)
from batch.store.manifest import Manifest
from batch.store.merge import HELD_AT_ONCE, Base, merged_schema, rows_for, stream_merge
from batch.store.report import SCHEMA, Decorate, ReportWriter
from batch.store.row import Row
from batch.store.seal import Seals
from batch.store.spill import Spill, spill_path

__all__ = ["Recorder"]


def ids_path(report: Path) -> Path:
    """Where the plan's IDs are paged out to (removed as soon as mapped)."""
    return report.with_name(f".{report.name}.ids")


def _counted(row: Row, kept: Kept | None) -> Row:
    """``row`` with the session's counts: ``kept``'s, or the row's own (None)."""
    if kept is not None:
        return replace(row, checks=kept.checks, checked_at=kept.checked_at)
    checks, checked_at = own(Details(row.fetched_at, row.checked_at, row.checks, row.attempts))
    return replace(row, checks=checks, checked_at=checked_at)


class Recorder:
    """The kept answers and the journal of one run (:meth:`finished`: the IDs answered in
    it). Rows are spilled as they come (:class:`~batch.store.spill.Spill`); the recorder
    holds each session's :class:`~batch.store.ledger.Kept` answer in the columns of a
    :class:`~batch.store.ledger.KeptTable`."""

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
        index: SessionIds | None = None,
    ) -> None:
        self.report = report
        self.journal = journal
        self.tally = tally
        self.spill = Spill(spill_path(report), batch_rows=max(batch_rows, 1024), mode=mode)
        self._index = index
        self._kept = KeptTable(index, read=self.spill.details)
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
        header: Mapping[str, object],
        tally: Tally,
        *,
        must_match: Iterable[str] = (),
        batch_rows: int,
        mode: int,
        schema: pa.Schema = SCHEMA,
        decorate: Decorate | None = None,
        index: SessionIds | None = None,
    ) -> Recorder:
        """The recorder of ``report``, its journal opened (or started) with ``header``.

        ``schema`` and ``decorate`` are the report's (kept input columns, reconciliation):
        every row written goes through ``decorate``; the journal keeps the rows as fetched.
        ``index``: the plan's IDs, by whose places the kept answers are held.
        """
        journal = Journal.open(
            journal_path(report), header, must_match=must_match, mode=mode, lazy=True
        )
        return cls(
            report,
            journal,
            tally,
            batch_rows=batch_rows,
            mode=mode,
            schema=schema,
            decorate=decorate,
            index=index,
        )

    # --- the kept answers -------------------------------------------------------------

    def add(
        self, row: Row, columns: Mapping[str, object] | None = None, *, held: bool = False
    ) -> Kept:
        """Merge ``row`` into the session's kept answer (the row spilled; ``columns``: its
        base columns, when made already); the kept answer. ``held``: keep its moments
        and counts in memory even when they are the row's own."""
        old = self._kept.get(row.session_id)
        where = self.spill.append(row, columns)
        kept = fold(old, row, where)
        # the row's own answer: its moments and counts are read back from the spill
        plain = not held and (old is None or kept == fold(None, row, where))
        self._kept.put(row.session_id, kept, plain=plain)
        return kept

    def get(self, session_id: str) -> Kept | None:
        return self._kept.get(session_id)

    def brief(self, session_id: str) -> Brief | None:
        """What the plan reads of the session's kept answer (no moments: none read back)."""
        return self._kept.brief(session_id)

    def rows(self, session_ids: Sequence[str]) -> list[Row]:
        """The kept rows of ``session_ids`` (held ones), whole, in that order."""
        spots = [self._kept.spot(sid) for sid in session_ids]
        rows = self.spill.take([where for where, _ in spots])
        return [_counted(row, k) for row, (_, k) in zip(rows, spots, strict=True)]

    def columns(self, session_ids: Sequence[str]) -> list[dict[str, object]]:
        """What :meth:`rows` gives, as the rows' columns (:meth:`Row.flat`): the report
        writes them without a :class:`Row` made of each."""
        return self._columns_at([self._kept.spot(sid) for sid in session_ids])

    def _columns_at(self, spots: Sequence[tuple[int, Kept | None]]) -> list[dict[str, object]]:
        columns = self.spill.take_columns([where for where, _ in spots])
        for values, (_, k) in zip(columns, spots, strict=True):
            if k is None:  # the row's own: what fold() makes of it alone
                values["checks"], values["checked_at"] = own(Details.of(values))
            else:
                values["checks"], values["checked_at"] = k.checks, k.checked_at
        return columns

    def held(self) -> Sequence[str]:
        """The sessions the run holds a kept answer of, in first-seen order."""
        return self._kept.held()

    def finished(self, session_id: str) -> bool:
        """The session was answered (or its local steps redone) in this run."""
        return self._kept.finished(session_id)

    def finished_rows(self) -> npt.NDArray[np.bool_] | None:
        """Which of the plan's sessions (``index``) were finished, by place (None: no
        plan given)."""
        return self._kept.finished_rows()

    def use_base(self, base: Base, session_ids: Collection[str]) -> None:
        """Merge into the report ``base``: its schema with the run's
        (:class:`~batch.store.merge.SchemaError` when a column's type cannot be), and its
        rows of ``session_ids`` into the kept answers (the rest stream through at commit)."""
        self.schema = merged_schema(base.schema, self._run_schema)
        self.base = base
        self.load(rows_for(base, session_ids), held=True)

    def load(self, rows: Iterable[Row], *, held: bool = False) -> None:
        """Merge rows an earlier run made (or invalid cells) into the kept answers.
        ``held``: their moments and counts held, not read back from the spill (a
        report's rows, met again by this run's answers in the input's order, not in the
        report's: read back, each would read a spill batch; +31% CPU for a shuffled
        ``--fresh`` rerun)."""
        for row in rows:
            self.add(row, held=held)

    def merge(self, rows: Iterable[Row]) -> int:
        """Rows of another journal (``--merge-journal``): merged and journaled here, so
        they are this run's to keep; how many."""
        count = 0
        for row in rows:
            self.record_row(row)
            count += 1
        return count

    # --- this run's answers -----------------------------------------------------------

    def record(self, outcome: Outcome, paths: Mapping[str, str] | None = None) -> Kept:
        """One answer: merged, spilled and journaled; the session's kept answer now."""
        kept = self.record_row(Row.of(outcome, paths))
        if self._kept.finish(outcome.session_id):
            self.tally.finished(outcome)
        return kept

    def record_row(self, row: Row) -> Kept:
        """A row made by this run (an answer, or a kept answer with a local step redone);
        a pending session that vanished keeps its last row, marked gone."""
        old = self._kept.get(row.session_id)
        if old is not None and gone_while_pending(old, row):
            row = marked_gone(self.rows([row.session_id])[0], row)
        columns = row.flat(extras=False)  # made once, for the journal and the spill
        self.journal.append(row, columns)
        return self.add(row, columns)

    def redone(self, row: Row) -> Kept:
        """A kept answer whose local steps were redone: recorded and counted."""
        kept = self.record_row(row)
        self._kept.finish(row.session_id)
        self.tally.done += 1
        return kept

    def leftovers(self, todo: Iterable[str], reason: str | None) -> Counter[str]:
        """A ``NotAttempted`` row for each session of ``todo`` still without an answer."""
        because = reason or "stopped"
        why = f"run ended before this session was fetched ({because}); a rerun fetches it"
        leftovers = Counter[str]()
        for session_id in todo:
            if not self._kept.finished(session_id):
                kept = self.add(Row.of(Outcome.not_attempted(session_id, why)))
                if kept.error_code == "NotAttempted":
                    leftovers["NotAttempted"] += 1
        return leftovers

    def count(self, session_ids: Iterable[str]) -> None:
        """The tally's closing counts, from the answers kept for ``session_ids``."""
        t = self.tally
        t.by_status.clear()
        t.by_error.clear()
        t.done = t.unresolved = t.pending = 0
        for kept, n in self._kept.briefs(session_ids):
            if kept.error_code == "NotAttempted":
                continue  # counted as a leftover
            t.done += n
            if kept.status is not None:
                t.by_status[kept.status] += n
            if kept.error_code is not None:
                t.by_error[kept.error_code] += n
            if kept.pending:
                t.pending += n
            elif kept.unresolved:
                t.unresolved += n

    # --- the report -------------------------------------------------------------------

    def commit(self, provenance: Mapping[str, object], *, input_sha256: str) -> Manifest:
        """Write the report (atomically): the base streamed through, the kept answers
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
            if self.base.path is None:  # a new report: the held rows, from the spill
                self._write_held(writer)
            else:
                stream_merge(writer, self.base, self)
        except BaseException:
            writer.abandon()
            raise
        manifest = writer.commit(provenance, input_sha256=input_sha256)
        self.journal.reset()
        if self.seals is not None:
            self.seals.record(self.location, self.report)
        return manifest

    def _write_held(self, writer: ReportWriter) -> None:
        """Every held row in first-seen order, as :func:`~batch.store.merge.stream_merge`
        writes them into no report, but by their places: the rows carry their IDs, so the
        plan's are paged out first (:meth:`~batch.store.ids.SessionIds.page_out`)."""
        if self._index is not None:
            self._index.page_out(ids_path(self.report), mode=self._mode)
        for spots in self._kept.spots(HELD_AT_ONCE):
            for values in self._columns_at(spots):
                writer.add_columns(values)

    def close(self, *, remove: bool) -> None:
        """The run is over: the journal closed (removed when the run left nothing to
        ask), the spill removed."""
        self.spill.close()
        self.journal.close(remove=remove)

    def abandon(self) -> None:
        """The run failed: keep the journal for a rerun (the report is left as it was).

        Quietly: this cleanup runs after the error that ended the run and must not hide it.
        """
        self.journal.close(quiet=True)
        self.spill.close()
