"""Read session IDs from a CSV or Parquet file into a :class:`Plan`.

Both formats are read in record batches (pyarrow's streaming CSV reader and
``ParquetFile.iter_batches``) and only the ID column is materialised, so memory grows with
the set of unique IDs and nothing else.

Each cell is stripped of surrounding whitespace and lower-cased, then checked against the
API's pattern. Blank cells are counted and skipped; repeated IDs collapse to their first
occurrence; cells that still fail the pattern become :class:`InvalidId` entries that get a
report row and are never sent. Spreadsheet exports work: UTF-8 byte-order mark, CRLF,
quoted fields holding commas or newlines, extra columns.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch.errors import InputError

__all__ = [
    "SESSION_ID_PATTERN",
    "InvalidId",
    "Plan",
    "display_value",
    "file_sha256",
    "normalize",
    "read_plan",
]

SESSION_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DISPLAY_LIMIT = 64
_CSV_BLOCK = 1 << 20
_PARQUET_BATCH = 65_536

Format = Literal["csv", "parquet"]


@dataclass(frozen=True, slots=True)
class InvalidId:
    """A cell that is not a session ID: shown (truncated, escaped) and why."""

    value: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will do: the unique valid IDs in input order, and the rest counted."""

    path: Path
    format: Format
    column: str
    sha256: str
    rows: int
    blank: int
    duplicates: int
    valid: tuple[str, ...]
    invalid: tuple[InvalidId, ...]
    origin: str = ""  # where the input came from (an s3:// URL for a downloaded copy)

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "valid": len(self.valid),
            "duplicates": self.duplicates,
            "invalid": len(self.invalid),
            "blank": self.blank,
        }


def normalize(cell: str) -> str:
    """Strip surrounding whitespace and lower-case: ``' ABC-… '`` -> ``'abc-…'``."""
    return cell.strip().lower()


def display_value(value: str) -> str:
    """A safe, bounded rendering of an arbitrary cell for reports and messages."""
    shown = value[:_DISPLAY_LIMIT]
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in shown)
    if len(value) > _DISPLAY_LIMIT:
        escaped += f"...(+{len(value) - _DISPLAY_LIMIT} chars)"
    return escaped


def _invalid_reason(value: str) -> str:
    if len(value) != 36:
        return f"not a session ID: {len(value)} characters, expected 36"
    return "not a session ID: does not match [0-9a-f]{8}-[0-9a-f]{4}-...-[0-9a-f]{12}"


def detect_format(path: Path, fmt: str) -> Format:
    if fmt in ("csv", "parquet"):
        return fmt  # type: ignore[return-value]  # narrowed by the membership test
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(
        f"cannot tell the format of {path} from its extension {suffix or '(none)'!r}: "
        "name it .csv or .parquet, or pass --format csv|parquet"
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"input file not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a directory, not a file: {path}")
    try:
        with path.open("rb") as f:
            first = f.read(1)
    except PermissionError:
        raise InputError(f"input file is not readable (permission denied): {path}") from None
    if not first:
        raise InputError(f"input file is empty (0 bytes): {path}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _columns_message(column: str, present: list[str]) -> str:
    shown = ", ".join(repr(c) for c in present[:20]) + (" ..." if len(present) > 20 else "")
    return f"column {column!r} not found; columns present: {shown or '(none)'} (see --column)"


def _csv_batches(path: Path, column: str) -> Iterator[pa.Array]:
    read = pacsv.ReadOptions(block_size=_CSV_BLOCK)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    try:
        with pacsv.open_csv(path, read_options=read, parse_options=parse) as peek:
            names = peek.schema.names
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from None
    if column not in names:
        raise InputError(_columns_message(column, names))
    # In a one-column export an empty line is a blank cell, not noise: count it.
    parse = pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=len(names) > 1)
    convert = pacsv.ConvertOptions(column_types={column: pa.string()}, include_columns=[column])
    try:
        with pacsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        ) as reader:
            for batch in reader:
                yield batch.column(0)
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from None


def _csv_error(path: Path, exc: Exception) -> InputError:
    text = str(exc)
    if "invalid UTF8" in text or "UTF8" in text:
        return InputError(f"input {path} is not UTF-8 text; save it as UTF-8 CSV")
    if "Empty CSV file" in text:
        return InputError(f"input file is empty: {path}")
    return InputError(f"input {path} is not a readable CSV file: {text.splitlines()[0]}")


def _parquet_batches(path: Path, column: str) -> Iterator[pa.Array]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            f"input {path} is not a readable Parquet file: {str(exc).splitlines()[0]}"
        ) from None
    schema = pf.schema_arrow
    if column not in schema.names:
        raise InputError(_columns_message(column, schema.names))
    kind = schema.field(column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InputError(f"column {column!r} in {path} holds {kind}, not text")
    try:
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, columns=[column]):
            yield batch.column(0)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            f"input {path} is a damaged Parquet file: {str(exc).splitlines()[0]}"
        ) from None


class _Cells:
    """The input's cells sorted as they are read: valid IDs, invalid cells, and counts."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.shown_invalid: set[str] = set()
        self.valid: list[str] = []
        self.invalid: list[InvalidId] = []
        self.rows = self.blank = self.duplicates = 0

    def add(self, cell: str | None) -> None:
        self.rows += 1
        value = normalize(cell) if cell is not None else ""
        if not value:
            self.blank += 1
        elif value in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(value)
            if SESSION_ID_PATTERN.fullmatch(value):
                self.valid.append(value)
                return
            shown = display_value(value)
            if shown in self.shown_invalid:  # long cells that differ only past the cut
                self.duplicates += 1
            else:
                self.shown_invalid.add(shown)
                self.invalid.append(InvalidId(shown, _invalid_reason(value)))


def read_plan(
    path: Path, *, column: str = "session_id", fmt: str = "auto", origin: str | None = None
) -> Plan:
    """Read and validate the whole input; raise :class:`InputError` with one clear line.

    ``origin`` names where ``path`` came from when it is a local copy (of an S3 object).
    """
    format_ = detect_format(path, fmt)
    _check_file(path)
    batches = _csv_batches(path, column) if format_ == "csv" else _parquet_batches(path, column)

    cells = _Cells()
    for array in batches:
        for cell in array.to_pylist():
            cells.add(cell)
    return Plan(
        path=path,
        format=format_,
        column=column,
        sha256=file_sha256(path),
        rows=cells.rows,
        blank=cells.blank,
        duplicates=cells.duplicates,
        valid=tuple(cells.valid),
        invalid=tuple(cells.invalid),
        origin=origin or str(path.resolve()),
    )
