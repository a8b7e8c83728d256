"""Read session IDs from a CSV or Parquet file into a :class:`Plan`.

Both formats are read in record batches (pyarrow's streaming CSV reader and
``ParquetFile.iter_batches``) and only the ID column is materialised, so memory grows with
the set of unique IDs and nothing else.

Columns named in ``keep`` (``--keep-columns``, and the application's decision and
confidence columns) are read beside the ID: typed as stored in a Parquet input, as text
from a CSV. Their values are kept per valid session only, from the session's first row;
a later row of the same ID with other values counts as a conflict (:attr:`Plan.conflicts`).

Each cell is stripped of surrounding whitespace and lower-cased, then checked against the
API's pattern. Blank cells are counted and skipped; repeated IDs collapse to their first
occurrence; cells that still fail the pattern become :class:`InvalidId` entries that get a
report row and are never sent. Spreadsheet exports work: UTF-8 byte-order mark, CRLF,
quoted fields holding commas or newlines, extra columns.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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
    kept_fields: tuple[pa.Field, ...] = ()  # the columns read beside the ID, typed
    kept: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)  # valid ID -> values
    conflicts: int = 0  # repeated IDs whose kept values differ from the first row's

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


def _columns_message(column: str, present: list[str], option: str = "--column") -> str:
    shown = ", ".join(repr(c) for c in present[:20]) + (" ..." if len(present) > 20 else "")
    return f"column {column!r} not found; columns present: {shown or '(none)'} (see {option})"


Flags = Mapping[str, str]  # an input column -> the option that named it (for messages)


def _check_columns(column: str, keep: Sequence[str], present: list[str], flags: Flags) -> None:
    if column not in present:
        raise InputError(_columns_message(column, present))
    for name in keep:
        if name not in present:
            raise InputError(_columns_message(name, present, flags.get(name, "--keep-columns")))


def _csv_batches(
    path: Path, column: str, keep: Sequence[str], flags: Flags
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``column`` then ``keep``, every cell as text."""
    read = pacsv.ReadOptions(block_size=_CSV_BLOCK)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    try:
        with pacsv.open_csv(path, read_options=read, parse_options=parse) as peek:
            names = peek.schema.names
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from None
    _check_columns(column, keep, names, flags)
    wanted = [column, *keep]
    # In a one-column export an empty line is a blank cell, not noise: count it.
    parse = pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=len(names) > 1)
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(wanted, pa.string()), include_columns=wanted
    )
    try:
        with pacsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        ) as reader:
            yield from reader
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from None


def _csv_fields(keep: Sequence[str]) -> tuple[pa.Field, ...]:
    return tuple(pa.field(name, pa.string()) for name in keep)


def _csv_error(path: Path, exc: Exception) -> InputError:
    text = str(exc)
    if "invalid UTF8" in text or "UTF8" in text:
        return InputError(f"input {path} is not UTF-8 text; save it as UTF-8 CSV")
    if "Empty CSV file" in text:
        return InputError(f"input file is empty: {path}")
    return InputError(f"input {path} is not a readable CSV file: {text.splitlines()[0]}")


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            f"input {path} is not a readable Parquet file: {str(exc).splitlines()[0]}"
        ) from None


def _value_type(kind: pa.DataType) -> pa.DataType:
    """A dictionary-encoded column's values' type (what ``to_pylist`` gives)."""
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def _parquet_fields(
    path: Path, column: str, keep: Sequence[str], flags: Flags
) -> tuple[pa.Field, ...]:
    schema = _open_parquet(path).schema_arrow
    _check_columns(column, keep, schema.names, flags)
    return tuple(pa.field(name, _value_type(schema.field(name).type)) for name in keep)


def _parquet_batches(path: Path, column: str, keep: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """Record batches of ``column`` then ``keep``, as stored (columns checked already)."""
    pf = _open_parquet(path)
    schema = pf.schema_arrow
    kind = _value_type(schema.field(column).type)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InputError(f"column {column!r} in {path} holds {kind}, not text")
    try:
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, columns=[column, *keep]):
            yield batch.select([column, *keep])
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
        self.kept: dict[str, tuple[Any, ...]] = {}
        self.rows = self.blank = self.duplicates = self.conflicts = 0

    def add(self, cell: str | None, kept: tuple[Any, ...] = ()) -> None:
        self.rows += 1
        value = normalize(cell) if cell is not None else ""
        if not value:
            self.blank += 1
        elif value in self.seen:
            self.duplicates += 1
            first = self.kept.get(value)
            if first is not None and first != kept:
                self.conflicts += 1
        else:
            self.seen.add(value)
            if SESSION_ID_PATTERN.fullmatch(value):
                self.valid.append(value)
                if kept:
                    self.kept[value] = kept
                return
            shown = display_value(value)
            if shown in self.shown_invalid:  # long cells that differ only past the cut
                self.duplicates += 1
            else:
                self.shown_invalid.add(shown)
                self.invalid.append(InvalidId(shown, _invalid_reason(value)))


def read_plan(  # the options of reading, named
    path: Path,
    *,
    column: str = "session_id",
    fmt: str = "auto",
    origin: str | None = None,
    keep: Sequence[str] = (),
    flags: Flags | None = None,
) -> Plan:
    """Read and validate the whole input; raise :class:`InputError` with one clear line.

    ``origin`` names where ``path`` came from when it is a local copy (of an S3 object);
    ``keep`` names the columns whose values are kept per session (:attr:`Plan.kept`);
    ``flags`` the option that named each (``--region-column``...) for the message when one
    is missing (default ``--keep-columns``).
    """
    format_ = detect_format(path, fmt)
    _check_file(path)
    keep, flags = list(dict.fromkeys(keep)), flags or {}
    if format_ == "csv":
        batches, fields = _csv_batches(path, column, keep, flags), _csv_fields(keep)
    else:
        fields = _parquet_fields(path, column, keep, flags)
        batches = _parquet_batches(path, column, keep)

    cells = _Cells()
    for batch in batches:
        ids = batch.column(0).to_pylist()
        if keep:
            values = zip(*(batch.column(i + 1).to_pylist() for i in range(len(keep))), strict=True)
            for cell, kept in zip(ids, values, strict=True):
                cells.add(cell, kept)
        else:
            for cell in ids:
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
        kept_fields=fields,
        kept=cells.kept,
        conflicts=cells.conflicts,
    )
