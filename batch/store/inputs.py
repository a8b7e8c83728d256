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
quoted fields holding commas or newlines, extra columns, and their dialects: the field
separator is sniffed from the file's start (comma, semicolon, tab or bar; ``delimiter``
overrides it) and a file without a header row is read with ``header=False`` (columns
``1``, ``2``, ...; the IDs default to column ``1``). A missing column whose name looks like
a session ID means the file has no header row: the message says so.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch.errors import InputError
from batch.store.ids import (
    ANCHORED_PATTERN,
    SESSION_ID_PATTERN,
    KeyBuffer,
    SessionIds,
    uuid_keys,
)
from batch.store.lean import give_back

__all__ = [
    "DEFAULT_COLUMN",
    "SESSION_ID_PATTERN",
    "Dialect",
    "InvalidId",
    "KeptValues",
    "Plan",
    "display_value",
    "file_sha256",
    "normalize",
    "read_plan",
    "sniff_delimiter",
]

DEFAULT_COLUMN = "session_id"
_DISPLAY_LIMIT = 64
_CSV_BLOCK = 1 << 17  # 128 KiB: pyarrow reads blocks ahead; 1 MiB ones cost ~50 MB at 37 MB
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
    valid: SessionIds  # in columns: a str is made as one is taken out
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
        if any(SESSION_ID_PATTERN.fullmatch(normalize(name)) for name in present):
            raise InputError(
                f"column {column!r} not found, and the first row holds a session ID, not "
                "column names: the file has no header row; pass --no-header (the IDs are "
                "then column 1: --column 1)"
            )
        raise InputError(_columns_message(column, present))
    for name in keep:
        if name not in present:
            raise InputError(_columns_message(name, present, flags.get(name, "--keep-columns")))


_SNIFFED = ",;\t|"
_SAMPLE = 1 << 16


def sniff_delimiter(path: Path) -> str:
    """The field separator of a CSV file, from its first 64 KiB (comma if unclear)."""
    with path.open("rb") as f:
        sample = f.read(_SAMPLE).decode("utf-8-sig", errors="replace")
    if len(sample) == _SAMPLE:  # a cut last line would mislead the sniffer
        sample = sample[: sample.rfind("\n") + 1] or sample
    try:
        return csv.Sniffer().sniff(sample, delimiters=_SNIFFED).delimiter
    except csv.Error:  # one column, or no consistent separator
        return ","


@dataclass(frozen=True, slots=True)
class Dialect:
    """How a CSV file is written: its field separator (None: sniffed) and header row."""

    delimiter: str | None = None
    header: bool = True


def _csv_names(path: Path, read: pacsv.ReadOptions, delimiter: str, header: bool) -> list[str]:
    parse = pacsv.ParseOptions(newlines_in_values=True, delimiter=delimiter)
    try:
        with pacsv.open_csv(path, read_options=read, parse_options=parse) as peek:
            names: list[str] = peek.schema.names
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc) from None
    return names if header else [str(n) for n in range(1, len(names) + 1)]


def _csv_batches(
    path: Path, column: str, keep: Sequence[str], flags: Flags, dialect: Dialect
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``column`` then ``keep``, every cell as text."""
    delimiter = dialect.delimiter or sniff_delimiter(path)
    read = pacsv.ReadOptions(block_size=_CSV_BLOCK, autogenerate_column_names=not dialect.header)
    names = _csv_names(path, read, delimiter, dialect.header)
    if not dialect.header:
        read = pacsv.ReadOptions(block_size=_CSV_BLOCK, column_names=names)
    _check_columns(column, keep, names, flags)
    wanted = [column, *keep]
    # In a one-column export an empty line is a blank cell, not noise: count it.
    parse = pacsv.ParseOptions(
        newlines_in_values=True, ignore_empty_lines=len(names) > 1, delimiter=delimiter
    )
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


class KeptValues(Mapping[str, tuple[Any, ...]]):
    """The kept input columns of each valid session (its first row's), in columns: an
    Arrow table in the plan's order, found by ID through the plan's :class:`SessionIds`.
    Empty when no column is kept."""

    def __init__(self, ids: SessionIds, table: pa.Table | None = None) -> None:
        self._ids, self._table = ids, table

    def __getitem__(self, session_id: str) -> tuple[Any, ...]:
        row = self._ids.row(session_id) if self._table is not None else None
        if row is None or self._table is None:
            raise KeyError(session_id)
        return tuple(column[row].as_py() for column in self._table.columns)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids) if self._table is not None else iter(())

    def __len__(self) -> int:
        return len(self._ids) if self._table is not None else 0


class _Cells:
    """The input's cells sorted as they are read: valid IDs (16-byte keys, in columns),
    invalid cells, and counts. A cell that is a session ID once ASCII whitespace is
    trimmed and ASCII letters lowered is found by pyarrow per batch; every other cell
    goes through :func:`normalize` as before (what ``str.strip``/``str.lower`` make of it
    decides)."""

    def __init__(self, kept: int, bound: int) -> None:
        self.seen: set[str] = set()  # invalid values
        self.shown_invalid: set[str] = set()
        self.invalid: list[InvalidId] = []
        self.keys = KeyBuffer(bound)  # the valid IDs' keys, repeats too
        self.kept: list[pa.RecordBatch] = []  # per batch: the valid rows' kept columns
        self.kept_columns = kept
        self.rows = self.blank = self.duplicates = 0

    def add_batch(self, batch: pa.RecordBatch) -> None:
        ids = batch.column(0)
        if pa.types.is_dictionary(ids.type):
            ids = ids.dictionary_decode()
        if not pa.types.is_string(ids.type):  # a large_string column
            ids = ids.cast(pa.string())
        self.rows += len(ids)
        norm = pc.ascii_lower(pc.ascii_trim_whitespace(ids))
        match = pc.fill_null(pc.match_substring_regex(norm, ANCHORED_PATTERN), False)
        ok = match.to_numpy(zero_copy_only=False).copy()
        if not ok.all():
            norm = self._others(ids, norm, ok)
        self.keys.extend(uuid_keys(norm.filter(pa.array(ok))))
        if self.kept_columns:
            columns = batch.select(range(1, self.kept_columns + 1))
            self.kept.append(columns.filter(pa.array(ok)))

    def _others(self, ids: pa.Array, norm: pa.Array, ok: np.ndarray) -> pa.Array:
        """The cells pyarrow did not find valid, the Python way: blank, invalid, or a
        session ID after all (``ok`` set; the normalized column then has it)."""
        rest = np.flatnonzero(~ok)
        fixed: dict[int, str] = {}
        for place, cell in zip(rest, ids.take(pa.array(rest)).to_pylist(), strict=True):
            value = normalize(cell) if cell is not None else ""
            if not value:
                self.blank += 1
            elif SESSION_ID_PATTERN.fullmatch(value):
                ok[place] = True
                fixed[int(place)] = value
            elif value in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(value)
                self._invalid(value)
        if not fixed:
            return norm
        values = norm.to_pylist()
        return pa.array([fixed.get(i, v) for i, v in enumerate(values)], pa.string())

    def _invalid(self, value: str) -> None:
        shown = display_value(value)
        if shown in self.shown_invalid:  # long cells that differ only past the cut
            self.duplicates += 1
        else:
            self.shown_invalid.add(shown)
            self.invalid.append(InvalidId(shown, _invalid_reason(value)))

    def unique(self, fields: Sequence[pa.Field]) -> tuple[SessionIds, KeptValues, int]:
        """The valid IDs, first occurrences in order; their kept values; the conflicts."""
        buffer, self.keys = self.keys, KeyBuffer(0)
        repeated = len(buffer)
        if not self.kept_columns:  # the keys are SessionIds.unique's to free as it goes
            ids = SessionIds.unique(buffer.take())[0]
            self.duplicates += repeated - len(ids)
            return ids, KeptValues(ids), 0
        keys = buffer.take()
        ids, firsts = SessionIds.unique(keys)
        self.duplicates += repeated - len(ids)
        schema = pa.schema(list(fields))
        table = pa.Table.from_batches([b.cast(schema) for b in self.kept], schema=schema)
        self.kept.clear()
        conflicts = _conflicts(table, keys, firsts)
        return ids, KeptValues(ids, table.take(pa.array(firsts))), conflicts


def _conflicts(table: pa.Table, keys: np.ndarray, firsts: np.ndarray) -> int:
    """Rows repeating an ID whose kept values differ from its first row's."""
    if len(firsts) == len(keys):
        return 0
    repeats = np.ones(len(keys), bool)
    repeats[firsts] = False
    later = np.flatnonzero(repeats)
    first_keys = keys[firsts]
    order = np.argsort(first_keys)
    first_of = firsts[order[np.searchsorted(first_keys, keys[later], sorter=order)]]
    differ = np.zeros(len(later), bool)
    for column in table.columns:
        a, b = column.take(pa.array(later)), column.take(pa.array(first_of))
        same = pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))
        differ |= ~same.to_numpy(zero_copy_only=False)
    return int(differ.sum())


def _sorted_cells(batches: Iterator[pa.RecordBatch], kept: int, bound: int) -> _Cells:
    """Every cell of the batches (IDs first, then ``kept`` columns) sorted into cells;
    ``bound``: at most so many of them are session IDs."""
    cells = _Cells(kept, bound)
    for batch in batches:
        cells.add_batch(batch)
    give_back()  # the reader's blocks: before the keys are sorted
    return cells


_BOUND_LIMIT = 1 << 26  # past it the keys' array grows as it fills


def _bound(path: Path, format_: Format) -> int:
    """At most how many session IDs the input holds: its rows (Parquet), or its size
    over 37 bytes (a CSV row holding an ID has 36 characters and a line end)."""
    if format_ == "parquet":
        rows = int(_open_parquet(path).metadata.num_rows)
    else:
        rows = path.stat().st_size // 37 + 1
    return min(rows, _BOUND_LIMIT)


def read_plan(  # the options of reading, named
    path: Path,
    *,
    column: str = "session_id",
    fmt: str = "auto",
    origin: str | None = None,
    keep: Sequence[str] = (),
    flags: Flags | None = None,
    dialect: Dialect | None = None,
) -> Plan:
    """Read and validate the whole input; raise :class:`InputError` with one clear line.

    ``origin`` names where ``path`` came from when it is a local copy (of an S3 object);
    ``keep`` names the columns whose values are kept per session (:attr:`Plan.kept`);
    ``flags`` the option that named each (``--region-column``...) for the message when one
    is missing (default ``--keep-columns``); ``dialect`` how a CSV is written (default: the
    separator sniffed, a header row). Without a header row the default column
    (``session_id``) is column ``1``.
    """
    format_ = detect_format(path, fmt)
    _check_file(path)
    keep, flags = list(dict.fromkeys(keep)), flags or {}
    dialect = dialect or Dialect()
    if format_ == "csv":
        if not dialect.header and column == DEFAULT_COLUMN:
            column = "1"
        batches = _csv_batches(path, column, keep, flags, dialect)
        fields = _csv_fields(keep)
    else:
        fields = _parquet_fields(path, column, keep, flags)
        batches = _parquet_batches(path, column, keep)

    cells = _sorted_cells(batches, len(keep), _bound(path, format_))
    valid, kept, conflicts = cells.unique(fields)
    give_back()  # the keys sorted, the reader's blocks: ~25 MB at a million IDs
    return Plan(
        path=path,
        format=format_,
        column=column,
        sha256=file_sha256(path),
        rows=cells.rows,
        blank=cells.blank,
        duplicates=cells.duplicates,
        valid=valid,
        invalid=tuple(cells.invalid),
        origin=origin or str(path.resolve()),
        kept_fields=fields,
        kept=kept,
        conflicts=conflicts,
    )
