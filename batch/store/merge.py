"""The columnar merge: a run's rows into the report already at its output, at any size.

A report is a ledger of every session any run of it has seen; a run touches few of them.
So a merge never holds the report as Python objects:

1. :func:`read_base` reads the report's footer (its schema, row count) and
   :func:`rows_for` reads only the rows of the sessions the run asks about: one Arrow
   column (``session_id``) to find them, then those rows of the row groups that hold them;
   they join the run's ledger (:mod:`batch.store.ledger`) and the rule decides there.
2. :func:`merged_schema` is the union of the report's schema and this run's: columns the
   run does not produce (kept input columns, the reconciliation, ``region`` of earlier
   runs) stay with their values; a column whose type changed is cast when no value can be
   lost, and refused otherwise (:class:`SchemaError`, exit 2) before any call is made.
3. :func:`stream_merge` copies the report row group by row group into the new file
   (:class:`~batch.store.report.ReportWriter`), each batch cast to the merged schema; the
   rows of sessions the ledger holds are replaced, where they stand, by the ledger's row;
   the ledger's sessions the report did not have follow, in the ledger's order. When
   the run replaces no row and adds no column (a nightly run of new sessions), the row
   groups are copied byte for byte instead: nothing of the report is encoded again.

Memory is the ledger (the run's sessions) plus one row group, and the report's footer
(~1 KB a column chunk, held twice while the new one is built: ~12 bytes a row).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch.errors import InputError, OutputError, UsageError
from batch.logs import LOGGER
from batch.store.lean import give_back, lean_reads
from batch.store.manifest import READ_BATCH, verify_report
from batch.store.report import SCHEMA, ReportWriter, read_provenance
from batch.store.row import Row
from batch.store.seal import Seals

log = logging.getLogger(LOGGER)

__all__ = [
    "HELD_AT_ONCE",
    "Base",
    "EditedReportError",
    "Held",
    "SchemaError",
    "check_base",
    "conform",
    "earlier_edits",
    "edit_history",
    "lean_reads",
    "merged_schema",
    "open_report",
    "read_base",
    "rows_for",
    "stream_merge",
]

_BATCH = READ_BATCH  # rows of the report read (and written) at a time
HELD_AT_ONCE = 1024  # held rows made dicts at a time (~4 KB each)


class SchemaError(UsageError):
    """A column's type in this run cannot be merged into the report's without loss."""


@dataclass(frozen=True, slots=True)
class Base:
    """The report a run merges into, as its footer describes it (``path`` None: no report)."""

    path: Path | None
    schema: pa.Schema | None = None
    rows: int = 0


def _unreadable(path: Path, exc: Exception) -> OutputError:
    return OutputError(
        f"cannot read the existing report {path} ({exc}); it may hold answers no rerun "
        "can fetch again: move it away or name another --output"
    )


def read_base(path: Path | None) -> Base:
    """What the report at ``path`` is (nothing read but its footer); none if absent.

    A file that is not a readable report is refused (OutputError): it is never
    overwritten, it may hold answers no rerun can bring back.
    """
    if path is None or not path.exists():
        return Base(None)
    try:
        with path.open("rb") as f:
            metadata = pq.ParquetFile(f).metadata
            schema = metadata.schema.to_arrow_schema()
            rows = metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
    if "session_id" not in schema.names:
        raise OutputError(f"{path} is not a liveness-audit report (no session_id column)")
    return Base(path, schema.remove_metadata(), rows)


@contextlib.contextmanager
def open_report(path: Path) -> Iterator[pq.ParquetFile]:
    """The report at ``path`` through one open file (one version of a replaced report),
    read without pre-buffering whole row groups."""
    with pa.OSFile(str(path)) as f:
        yield _parquet(f)


def _parquet(source: pa.NativeFile) -> pq.ParquetFile:
    # pre-buffering and the buffer's size: memory and speed only, the same rows
    return pq.ParquetFile(source, pre_buffer=False, buffer_size=1 << 20)  # pragma: no mutate


def _batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The report's rows, a batch at a time, through one open file (one version of it)."""
    try:
        with open_report(path) as report:
            # the batch's size and the thread: memory and speed only, the same rows
            it = report.iter_batches(batch_size=_BATCH, use_threads=False)  # pragma: no mutate
            yield from it
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None


def _rows(batch: pa.RecordBatch | pa.Table, path: Path | None = None) -> list[Row]:
    """The rows of a batch read from a report (every column: the others as extras); a
    report written before a column existed reads with it empty."""
    try:
        return [Row.from_flat(values) for values in batch.to_pylist()]
    except (TypeError, ValueError) as exc:
        where = f"the existing report {path}" if path else "a row of the existing report"
        raise OutputError(f"cannot read {where}: {exc}") from None


def rows_for(base: Base, session_ids: Collection[str]) -> list[Row]:
    """The report's rows of ``session_ids`` (every column of the file), in file order.

    Only the ``session_id`` column is read to find them; then only the row groups that
    hold one of them, whole.
    """
    if base.path is None or not session_ids:
        return []
    wanted = _id_array(session_ids)
    rows: list[Row] = []
    try:
        with open_report(base.path) as report:
            for group in range(report.metadata.num_row_groups):
                # one column, one thread: speed only (the IDs are the file's first column)
                ids = _group(report, group, ["session_id"]).column(0)  # pragma: no mutate
                mask = pc.is_in(ids, value_set=wanted)
                if pc.any(mask).as_py():
                    found = _group(report, group).filter(mask)
                    rows.extend(_rows(found, base.path))
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(base.path, exc) from None
    return rows


def _id_array(session_ids: Iterable[str]) -> pa.Array:
    """``session_ids`` as one Arrow string array, made a chunk at a time: a plan's
    million IDs (held as keys) are never a million Python strings at once."""
    chunks: list[pa.Array] = []
    ids = iter(session_ids)
    while chunk := list(itertools.islice(ids, _BATCH)):
        chunks.append(pa.array(chunk, pa.string()))
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())


def _group(report: pq.ParquetFile, group: int, columns: list[str] | None = None) -> pa.Table:
    """One row group of ``report`` (``columns`` of it, or all), read on this thread."""
    return report.read_row_group(group, columns, use_threads=False)  # pragma: no mutate


class EditedReportError(OutputError):
    """The report was changed after liveness-audit wrote it: not merged into (exit 2)."""


def check_base(
    base: Base, *, accept: bool, seals: Seals | None = None, location: str = ""
) -> dict[str, Any] | None:
    """Verify the report against its manifest before anything is merged into it.

    A report byte for byte as this tool sealed it at ``location`` needs no more
    (:mod:`batch.store.seal`); any other is verified row by row. An intact report: None.
    An edited one (or one without a manifest) is refused (:class:`EditedReportError`: how
    many rows differ, the first session IDs, what to do) unless ``accept``; then the
    record of what was accepted, for the provenance.
    """
    if base.path is None or (seals is not None and seals.holds(location, base.path)):
        return None
    problems: tuple[str, ...]
    edited: tuple[int, ...] | None
    ids: tuple[str, ...]
    try:
        found = verify_report(base.path)
    except InputError as exc:
        problems, edited, ids = (str(exc),), None, ()
    else:
        if found.ok:
            return None
        problems, edited, ids = found.problems, found.edited, found.edited_ids
    differ = problems[0]
    if edited is not None:
        shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        differ = f"{len(edited)} rows differ from the ones written (sessions {shown})"
    if not accept:
        raise EditedReportError(
            f"{base.path} cannot be merged into: {differ}. A merge would sign its values "
            "as answers. Restore it, move it away (a new report is started), or rerun with "
            "--accept-edited-report to merge it anyway (recorded in the report's provenance)"
        )
    log.warning(
        "merging into %s although it was edited (--accept-edited-report): %s",
        base.path,
        "; ".join(problems),
    )
    return {
        "report_rows_differ": None if edited is None else len(edited),
        "rows": None if edited is None else list(edited[:1000]),
        "session_ids": list(ids),
        "problems": list(problems),
    }


def earlier_edits(base: Base) -> list[dict[str, Any]]:
    """The edited reports earlier runs accepted (``accepted_edits`` of the provenance):
    carried into every later report, so ``verify`` shows the history."""
    if base.path is None:
        return []
    try:
        provenance = read_provenance(base.path)
    except InputError:
        return []
    edits = provenance.get("accepted_edits")
    return [edit for edit in edits if isinstance(edit, dict)] if isinstance(edits, list) else []


def edit_history(base: Base, accepted: dict[str, Any] | None, run_id: str) -> list[dict[str, Any]]:
    """The ``accepted_edits`` of a report merged from ``base``: earlier runs' and, when
    this merge accepted an edited ``base`` (:func:`check_base`), this one, stamped."""
    history = earlier_edits(base)
    if accepted is None:
        return history
    return [*history, {"run_id": run_id, "at": datetime.now(UTC).isoformat(), **accepted}]


# --- schema evolution ----------------------------------------------------------------


def _widens(source: pa.DataType, target: pa.DataType) -> bool:  # noqa: PLR0911  # one return per kind of type
    """Every value of type ``source`` is a value of ``target`` (a lossless cast)."""
    t = pa.types
    if source == target or t.is_null(source):
        return True
    if t.is_integer(source) and t.is_integer(target):
        if t.is_signed_integer(source) == t.is_signed_integer(target):
            return bool(source.bit_width <= target.bit_width)
        return bool(t.is_unsigned_integer(source) and source.bit_width < target.bit_width)
    if t.is_integer(source) and t.is_floating(target):
        return bool(source.bit_width < 64 and target.bit_width == 64)
    if t.is_floating(source) and t.is_floating(target):
        return bool(source.bit_width <= target.bit_width)
    pairs = {(pa.string(), pa.large_string()), (pa.binary(), pa.large_binary())}
    if (source, target) in pairs or (target, source) in pairs:
        return True
    if t.is_timestamp(source) and t.is_timestamp(target) and source.tz == target.tz:
        units = ["s", "ms", "us", "ns"]
        return units.index(source.unit) <= units.index(target.unit)
    return False


def merged_schema(base: pa.Schema | None, run: pa.Schema) -> pa.Schema:
    """The run's columns (in its order), then the report's other columns.

    A column both have keeps the wider of the two types; when neither holds the other's
    values, :class:`SchemaError` names the column and both types. The report's own
    columns (:data:`~batch.store.report.SCHEMA`) take this version's types: older reports
    are read into them (:func:`conform`).
    """
    if base is None:
        return run
    fields = list(run)
    for i, field in enumerate(fields):
        if field.name in SCHEMA.names or field.name not in base.names:
            continue
        old = base.field(field.name).type
        if _widens(field.type, old):
            fields[i] = field.with_type(old)
        elif not _widens(old, field.type):
            raise SchemaError(
                f"column {field.name!r} is {old} in the report and {field.type} in this "
                "run: merging would lose values; convert it in the input, keep it under "
                "another name, or write to another --output"
            )
    fields += [field for field in base if field.name not in run.names]
    return pa.schema(fields)


def _filler(field: pa.Field, rows: int) -> pa.Array:
    """A column an older report lacks: empty (the counts of images and attempts 0)."""
    if field.name in ("attempts", "audit_image_count"):
        return pa.array(np.zeros(rows), type=field.type)
    if field.name == "audit_images":
        return pa.array([[]] * rows, type=field.type)
    return pa.nulls(rows, type=field.type)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with ``schema``'s columns, in its order, cast to its types."""
    arrays = []
    try:
        for field in schema:
            index = batch.schema.get_field_index(field.name)
            if index < 0:
                arrays.append(_filler(field, batch.num_rows))
                continue
            column = batch.column(index)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)
    except (pa.ArrowException, ValueError):  # an older report's image struct: row by row
        return pa.RecordBatch.from_pylist([row.flat() for row in _rows(batch)], schema=schema)


# --- the merge ------------------------------------------------------------------------


class Held(Protocol):
    """The kept rows a merge writes: a run's (:class:`~batch.engine.record.Recorder`) or a
    day's (:class:`~batch.store.ledger.Ledger`)."""

    def held(self) -> Sequence[str]:
        """The sessions held, in first-seen order."""
        ...

    def rows(self, session_ids: Sequence[str]) -> list[Row]:
        """The kept rows of held sessions, in that order."""
        ...

    def columns(self, session_ids: Sequence[str]) -> list[dict[str, object]]:
        """:meth:`rows` as the rows' columns (:meth:`~batch.store.row.Row.flat`)."""
        ...


def stream_merge(writer: ReportWriter, base: Base, held: Held) -> None:
    """Write the report (``base``) with the ``held`` rows merged in, into ``writer``.

    Each held row was already merged with the report's row of its session by the
    ledger's rule; it replaces that row where it stands, and takes the columns only the
    report's row has (kept input columns, reconciliation, region of earlier runs). The
    writer completes each held row (``decorate``) as it does any row it is given. The
    sessions the report did not have follow, ``HELD_AT_ONCE`` at a time.
    """
    order = held.held()
    written: set[str] = set()
    if base.path is not None:
        ids = pa.array(order, type=pa.string())
        if not _copied(writer, base.path, ids):
            for batch in _batches(base.path):
                writer.write_batch(_replaced(writer, batch, ids, held, written))
                give_back()
    for start in range(0, len(order), HELD_AT_ONCE):
        chunk = [sid for sid in order[start : start + HELD_AT_ONCE] if sid not in written]
        for values in held.columns(chunk):  # no Row made of each: straight to Arrow
            writer.add_columns(values)


def _copied(writer: ReportWriter, path: Path, ids: pa.Array) -> bool:
    """Whether the report's row groups went into ``writer`` as they are: when none of its
    rows is a held session's (the run only adds rows, as a nightly run of new sessions
    does) and its columns are the writer's (:meth:`ReportWriter.copy_row_groups`)."""
    try:
        with pa.OSFile(str(path)) as source:
            report = _parquet(source)
            return not _holds_any(report, ids) and writer.copy_row_groups(report, source)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None


def _holds_any(report: pq.ParquetFile, ids: pa.Array) -> bool:
    """Whether a row of ``report`` is one of the sessions ``ids`` (its IDs read alone)."""
    if not len(ids):
        return False
    # the batch's size and the thread: memory and speed only, the same answer
    ids_only = ["session_id"]  # pragma: no mutate  # the columns read: memory only
    batches = report.iter_batches(_BATCH, columns=ids_only, use_threads=False)  # pragma: no mutate
    return any(pc.any(pc.is_in(b.column(0), value_set=ids)).as_py() for b in batches)


def _replaced(
    writer: ReportWriter,
    batch: pa.RecordBatch,
    ids: pa.Array,
    held: Held,
    written: set[str],
) -> pa.RecordBatch:
    """``batch`` conformed to the writer's schema, its rows of held sessions replaced in
    place by the held ones (completed as the writer completes rows)."""
    schema = writer.schema
    mask = pc.is_in(batch.column("session_id"), value_set=ids)
    if not pc.any(mask).as_py():
        return conform(batch, schema)
    # a bit mask is never zero-copy; None says False as well
    flags = mask.to_numpy(zero_copy_only=False)  # pragma: no mutate
    mine: list[str] = []
    places: list[int] = []
    olds: list[dict[str, object]] = []
    matched = batch.filter(mask).to_pylist()
    # strict: equal lengths by construction (the mask's places, its rows)
    for place, old in zip(np.flatnonzero(flags), matched, strict=True):  # pragma: no mutate
        session_id = old["session_id"]
        if session_id in written:  # a damaged report's repeated ID: its first place wins
            continue
        written.add(session_id)
        mine.append(session_id)
        places.append(int(place))
        olds.append(old)
    rows = [  # strict: one held row per session asked, by construction
        writer.complete(row.with_extras(old))
        for row, old in zip(held.rows(mine), olds, strict=True)  # pragma: no mutate
    ]
    kept = conform(batch.filter(pc.invert(mask)), schema)
    new = pa.RecordBatch.from_pylist(rows, schema=schema)
    order = np.argsort(np.concatenate([np.flatnonzero(~flags), places]))  # distinct places
    table = pa.Table.from_batches([kept, new]).take(pa.array(order))
    return table.combine_chunks().to_batches()[0] if table.num_rows else kept
