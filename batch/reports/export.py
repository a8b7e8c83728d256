"""Every session as CSV or XLSX, analyst-first and safe to open in a spreadsheet.

Columns come in the order an analyst reads them: ``date`` (the night), ``session_id``, the
input columns the run kept, ``status``, ``confidence``, ``service_decision``,
``app_decision``, ``agrees``, ``disagreement``, ``reason`` (why it needs a look, agreeing
fails included); then the technical ones, audit images as numbered columns. Timestamps are
ISO 8601 in UTC with ``Z`` (in XLSX, date values shown so).

Both are streamed from :class:`~batch.reports.engine.Reports` (DuckDB) in record batches,
so memory does not grow with the rows, and written through
:class:`~batch.store.files.AtomicFile`: a temporary file beside the target, never through a
symlink, with the ``file_mode`` of every file holding answers, renamed over the target
when complete.

Values come from places the tool does not control (an input cell is kept as written), so:
control characters XML cannot hold are removed, and, as OWASP's "CSV injection" advice
says, a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
never a formula: in CSV it gets a leading ``'``; in XLSX it is text with Excel's quote
prefix. Numeric columns stay numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow.csv as pacsv
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, Cell
from openpyxl.utils import get_column_letter

from batch.errors import OutputError
from batch.reports.engine import REPORT_FIELDS, Reports, quoted, sql_type
from batch.reports.summary import METRICS, NightCounts
from batch.store.files import AtomicFile
from batch.store.report import IMAGE_FIELDS

__all__ = ["FORMULA_STARTS", "XLSX_ROWS", "Column", "columns", "write_csv", "write_xlsx"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_ROWS = 1_048_575  # a sheet's rows below its header
Kind = Literal["text", "float", "int", "bool", "time"]
_FORMATS: dict[Kind, str] = {
    "float": "0.00",
    "int": "0",
    "time": 'yyyy-mm-dd"T"hh:mm:ss"Z"',
}
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"  # what XML 1.0 cannot hold (tab, LF, CR can)
_KINDS: dict[str, Kind] = {
    "VARCHAR": "text",
    "DOUBLE": "float",
    "INTEGER": "int",
    "BIGINT": "int",
    "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "time",
}
_ANALYST = ("status", "confidence", "service_decision", "app_decision", "agrees")
_ANALYST_END = ("disagreement", "reason")
_TECHNICAL = (
    "outcome",
    "direction",
    "error_code",
    "error_message",
    "challenge_type",
    "challenge_version",
    "attempts",
    "fetched_at",
    "checked_at",
    "checks",
)
_IMAGE_KINDS: dict[str, Kind] = {
    **dict.fromkeys(IMAGE_FIELDS, "text"),
    **dict.fromkeys(("bbox_left", "bbox_top", "bbox_width", "bbox_height"), "float"),
    "bytes_size": "int",
    "evidence_size": "int",
    "evidence_last_modified": "time",
}
_TAIL = (
    ("region", "text"),
    ("app_decision_error", "text"),
    ("app_confidence", "float"),
    ("threshold", "float"),
    ("report", "text"),
)


@dataclass(frozen=True, slots=True)
class Column:
    """One exported column: its header, the SQL over ``audit`` that gives it, its kind."""

    name: str
    sql: str
    kind: Kind


def columns(reports: Reports) -> list[Column]:
    """The export's columns, analyst-first (see the module's docstring)."""
    kinds: dict[str, Kind] = {
        **dict.fromkeys(("date", "session_id", *_ANALYST_END, *_TECHNICAL), "text"),
        "confidence": "float",
        "agrees": "bool",
        "attempts": "int",
        "checks": "int",
        "fetched_at": "time",
        "checked_at": "time",
        **dict.fromkeys(("status", "service_decision", "app_decision"), "text"),
    }
    found = [Column(n, quoted(n), kinds[n]) for n in ("date", "session_id")]
    found += [Column(n, quoted(n), _KINDS.get(t, "text")) for n, t in reports.kept]
    found += [Column(n, quoted(n), kinds[n]) for n in (*_ANALYST, *_ANALYST_END, *_TECHNICAL)]
    found += [
        Column(f"reference_{n}", quoted(f"reference_{n}"), _IMAGE_KINDS[n]) for n in IMAGE_FIELDS
    ]
    found.append(Column("audit_image_count", "audit_image_count", "int"))
    ((widest,),) = reports.rows("SELECT coalesce(max(audit_image_count), 0) FROM audit")
    for i in range(int(widest)):
        found += [
            Column(f"audit_{i}_{n}", f"audit_images[{i + 1}].{n}", _IMAGE_KINDS[n])
            for n in IMAGE_FIELDS
        ]
    found += [Column(n, quoted(n), kind) for n, kind in _TAIL]  # type: ignore[arg-type]  # literal kinds
    listed = {c.name for c in found} | {"audit_images"}
    return found + [  # a report column added later: last, as it is
        Column(f.name, quoted(f.name), _KINDS.get(sql_type(f.type), "text"))
        for f in REPORT_FIELDS
        if f.name not in listed
    ]


def _csv_sql(column: Column) -> str:
    """The column as the CSV shows it: ISO 8601 with Z, text cleaned and never a formula."""
    if column.kind == "time":
        return f"strftime({column.sql}, '%Y-%m-%dT%H:%M:%S.%fZ')"
    if column.kind == "text":
        clean = f"regexp_replace(CAST({column.sql} AS VARCHAR), '{_CONTROL}', '', 'g')"
        starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_STARTS)
        return f"CASE WHEN left({clean}, 1) IN ({starts}) THEN '''' || {clean} ELSE {clean} END"
    return column.sql


def _query(picked: list[Column], expression: Any) -> str:
    select = ", ".join(f"{expression(c)} AS {quoted(c.name)}" for c in picked)
    return f"SELECT {select} FROM audit"  # noqa: S608  # our expressions over quoted names


def write_csv(reports: Reports, path: Path, *, mode: int) -> int:
    """Every session as CSV at ``path``, streamed; the number of rows written."""
    picked = columns(reports)
    rows = 0
    with _written(path, mode, "CSV export") as target:
        options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
        writer: pacsv.CSVWriter | None = None
        for batch in reports.batches(_query(picked, _csv_sql)):
            if writer is None:
                writer = pacsv.CSVWriter(target.file, batch.schema, write_options=options)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no rows: the header alone
            target.file.write(",".join(c.name for c in picked).encode() + b"\n")
        else:
            writer.close()
    return rows


@contextmanager
def _written(path: Path, mode: int, what: str) -> Iterator[AtomicFile]:
    """An :class:`AtomicFile` committed when the block ends, discarded if it fails (an
    OSError as one OutputError line)."""
    target = AtomicFile(path, mode=mode, what=what)
    try:
        yield target
        target.commit()
    except OSError as exc:
        target.discard()
        raise OutputError(f"cannot write {path}: {exc}") from None
    except BaseException:
        target.discard()
        raise


def _xlsx_sql(column: Column) -> str:
    if column.kind == "time":  # a date value in UTC: the cell's format says Z
        return f"CAST({column.sql} AS TIMESTAMP)"
    return column.sql


def _cell(sheet: Any, value: Any, kind: Kind) -> Cell | Any:
    """A cell's value: as it is when it needs no style (nulls, plain text, booleans: the
    fast path), else a cell with its number format or, for formula-like text, as text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if not value.startswith(FORMULA_STARTS):
            return value
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        cell.data_type = "s"  # openpyxl made any "=..." a formula
        cell.quotePrefix = True  # and Excel must not either, on edit
    elif kind in _FORMATS and value is not None:
        cell.number_format = _FORMATS[kind]
    return cell


_WIDTHS: dict[Kind, int] = {"text": 14, "float": 10, "int": 8, "bool": 8, "time": 21}


def _rows(reports: Reports, picked: list[Column]) -> Iterator[dict[str, Any]]:
    for batch in reports.batches(_query(picked, _xlsx_sql), size=10_000):
        yield from batch.to_pylist()


def write_xlsx(reports: Reports, nights: list[NightCounts], path: Path, *, mode: int) -> int:
    """Every session as a ``sessions`` sheet (frozen header, autofilter, widths, number
    formats) and a ``summary`` sheet (the trend), at ``path``; the rows written."""
    ((total,),) = reports.rows("SELECT count(*) FROM audit")
    if total > XLSX_ROWS:
        raise OutputError(
            f"cannot write {path}: {total} sessions do not fit a sheet ({XLSX_ROWS} rows); "
            "use --csv, or summarize fewer nights"
        )
    picked = columns(reports)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("sessions")
    sheet.freeze_panes = "A2"
    for i, column in enumerate(picked, start=1):
        width = 38 if column.name == "session_id" else _WIDTHS[column.kind]
        sheet.column_dimensions[get_column_letter(i)].width = max(width, len(column.name) + 2)
    sheet.append([c.name for c in picked])
    rows = 0
    for row in _rows(reports, picked):
        sheet.append([_cell(sheet, row[c.name], c.kind) for c in picked])
        rows += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(picked))}{rows + 1}"
    _summary_sheet(book, nights, reports)
    _save(book, path, mode)
    return rows


def _summary_sheet(book: Workbook, nights: list[NightCounts], reports: Reports) -> None:
    sheet = book.create_sheet("summary")
    sheet.freeze_panes = "B2"
    sheet.column_dimensions["A"].width = 14
    header = ["night", "sessions"]
    for metric in METRICS:
        header += [metric, f"{metric} share"]
    sheet.append(header)
    for night in nights:
        row: list[object] = [night.night, _cell(sheet, night.sessions, "int")]
        for metric in METRICS:
            share = WriteOnlyCell(sheet, value=night.share(metric))
            share.number_format = "0.0%"
            row += [_cell(sheet, night.counts[metric], "int"), share]
        sheet.append(row)
    sheet.append([])
    sheet.append(["report", "night", "threshold", "threshold from", "run id", "rows_sha256"])
    for f in reports.files:
        sheet.append([f.source, f.night, f.threshold, f.threshold_source, f.run_id, f.rows_sha256])


def _save(book: Workbook, path: Path, mode: int) -> None:
    with _written(path, mode, "XLSX export") as target:
        book.save(target.file)  # zipfile leaves a file it was given open: the commit closes it
