"""The report's manifest: row count, input hash and a hash over the rows.

Every report carries, in its Parquet key-value metadata under ``liveness_audit_manifest``::

    {"format": "liveness-audit-manifest/2", "rows": 12345,
     "input_sha256": "<SHA-256 of the input file, byte for byte>",
     "rows_sha256": "<SHA-256 over the rows>", "digest": "sha256 of column streams",
     "sketch": "<which rows: base64 of a 21 KB invertible Bloom lookup table>"}

``rows_sha256`` (``/2``, :class:`RowDigest`) hashes every column as streams (validity,
lengths, values; nested columns down to their leaves), each stream on its own, so it does
not depend on how rows are grouped into record batches or row groups, and any edit of a
value, any added, removed or reordered row changes it. It is computed with Arrow a batch
at a time: about 1.5 s of CPU per million rows (4 s with the sketch's fingerprints), where
``/1`` (one canonical JSON line per row, :class:`JsonRowDigest`) took about 100 s.
``sketch`` holds every row's 64-bit fingerprint (:mod:`batch.store.fingerprint`) by its
place: when the rows were edited, the sketch of the
file as it is, taken from the written one, names the edited rows (up to about 300).
:func:`verify_report` recomputes both from the file, and checks ``/1`` reports as ``/1``.

What the manifest proves is that the rows are the ones the run wrote. Someone able to
rewrite the file can also rewrite its manifest, so the run also prints and logs
``rows_sha256`` (the ``end`` event): kept in a log the editor cannot reach, it pins the
report (``liveness-audit verify REPORT --sha256 DIGEST``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch.errors import InputError
from batch.model import MANIFEST_FORMAT, MANIFEST_FORMATS, Manifest
from batch.store.encoding import json_default, read_footer
from batch.store.fingerprint import (
    LARGE_TYPES,
    Hashes,
    Sketch,
    first_fingerprints,
    fold_column,
    is_temporal,
    list_lengths,
    row_fingerprints,
    spans,
)
from batch.store.lean import give_back

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_KEY",
    "JsonRowDigest",
    "Manifest",
    "RowDigest",
    "Verification",
    "digest_of",
    "read_manifest",
    "verify_report",
]

MANIFEST_KEY = b"liveness_audit_manifest"
# Rows of a report decoded at a time (verify, merge): peak RSS grows with it (a 100,000-row
# report cost 64 MB over start at 16,384 rows, 34 MB at 4,096, see BENCHMARKS.md "The
# ledger at volume" for 2,048 with :func:`give_back`; CPU +0.1 s per 100,000 each halving).
READ_BATCH = 2_048


def canonical(row: Mapping[str, Any]) -> bytes:
    """One row as ``/1`` hashed it: canonical JSON and a newline."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=json_default)
    return text.encode() + b"\n"


class JsonRowDigest:
    """``liveness-audit-manifest/1``: SHA-256 over rows as canonical JSON lines (slow:
    one Python object per row); kept to verify reports written before ``/2``."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.rows = 0

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        for row in batch.to_pylist():
            self._hash.update(canonical(row))
        self.rows += batch.num_rows

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class RowDigest:
    """``liveness-audit-manifest/2``: SHA-256 over the report's columns, fed batch by batch
    and independent of the batching, and the :class:`Sketch` of the rows' fingerprints.

    Each column is read as streams (validity, lengths, values; lists and structs down to
    their leaves), each stream hashed on its own so that any split into batches gives
    the same bytes; ``rows_sha256`` hashes the streams' names and digests in order. Any
    edited, added, removed or moved value changes it; the sketch then names the rows.
    """

    def __init__(self) -> None:
        self._streams: dict[str, Any] = {}
        self.sketch = Sketch()
        self.rows = 0

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        if not batch.num_rows:
            return
        roots = stream_roots(batch.schema)
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            for chunk in chunks:
                self._feed(roots[name], chunk)
        self.sketch.add(row_fingerprints(batch))
        self.rows += batch.num_rows

    def update_report(self, report: pq.ParquetFile) -> None:
        """Every row of ``report``: the digest :meth:`update` makes of its batches, read
        one column of one row group at a time (``READ_BATCH`` rows of it at once), so that
        only a sliver of a row group is decoded at once (issue 19: a report's size must
        not show in a run's memory). A report whose column names do not each select their
        own column alone (a name with a dot) is read by batches."""
        if not _columns_apart(report):
            for batch in report.iter_batches(batch_size=READ_BATCH, use_threads=False):
                self.update(batch)
                give_back()
            return
        metadata, roots = report.metadata, stream_roots(report.schema_arrow)
        for group in range(metadata.num_row_groups):
            prints = first_fingerprints(metadata.row_group(group).num_rows)
            if not len(prints):  # as update() skips an empty batch
                continue
            for name in report.schema_arrow.names:
                self._update_column(report, group, name, roots[name], prints)
            self.sketch.add(prints)
            self.rows += len(prints)

    def _update_column(
        self, report: pq.ParquetFile, group: int, name: str, root: str, prints: Hashes
    ) -> None:
        """Column ``name`` of row group ``group`` into the streams (under ``root``) and
        ``prints``."""
        start = 0
        for batch in report.iter_batches(
            batch_size=READ_BATCH, row_groups=[group], columns=[name], use_threads=False
        ):
            column = batch.column(0)
            self._feed(root, column)
            end = start + len(column)
            prints[start:end] = fold_column(prints[start:end], name, column)
            start = end
        give_back()

    def _stream(self, name: str, data: bytes | memoryview) -> None:
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = hashlib.sha256()
        stream.update(data)

    def _feed(self, path: str, array: pa.Array) -> None:
        """Hash ``array``'s streams under ``path`` (recursively for lists and structs)."""
        kind = array.type
        if pa.types.is_dictionary(kind):
            array, kind = array.cast(kind.value_type), kind.value_type
        valid = pc.is_valid(array).to_numpy(zero_copy_only=False).astype(np.uint8)
        self._stream(f"{path}#valid", valid.tobytes())
        layout = _layout(kind)
        if layout == "text":  # decimals, maps, ...: their text
            text = pa.array([None if v is None else repr(v) for v in array.to_pylist()])
            self._feed(f"{path}#text", text)
        elif layout == "bytes":
            offsets, data = spans(array)
            self._stream(f"{path}#len", np.diff(offsets).astype("<i8").tobytes())
            self._stream(f"{path}#data", data.tobytes())
        elif layout == "list":
            self._stream(f"{path}#len", list_lengths(array).astype("<i8").tobytes())
            self._feed(f"{path}[]", array.flatten())
        elif layout == "struct":
            fields = stream_roots(kind)
            for field, child in zip(kind, array.flatten(), strict=True):
                self._feed(f"{path}.{fields[field.name]}", child)
        elif layout == "boolean":
            self._stream(
                f"{path}#data",
                array.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8).tobytes(),
            )
        elif layout == "number":  # integers, floats, dates and times
            plain = _as_numbers(array)
            self._stream(f"{path}#data", plain.to_numpy(zero_copy_only=False).tobytes())

    @property
    def streams(self) -> dict[str, str]:
        """Each stream's name and SHA-256 so far (to see which part of a report differs)."""
        return {name: stream.hexdigest() for name, stream in self._streams.items()}

    def hexdigest(self) -> str:
        whole = hashlib.sha256()
        for name, stream in self._streams.items():
            whole.update(name.encode() + b"\0" + stream.digest())
        return whole.hexdigest()


_SPECIAL = re.compile(r"[\\.\[\]#]")


@functools.lru_cache(maxsize=64)  # once per schema: it is asked at every batch
def stream_roots(fields: pa.Schema | pa.StructType) -> Mapping[str, str]:
    """Each column's (or a struct's field's) name as the root of its stream names
    (:meth:`RowDigest._feed`).

    The name itself, as in every report before, unless two columns' streams would share a
    name: a kept input column ``a.b`` beside a struct ``a`` with a field ``b``. Their bytes
    would then interleave by batch, and the digest would depend on the batching. Such
    columns' names are escaped (``\\`` before ``.``, ``[``, ``]``, ``#`` and ``\\``) until
    no two share a stream. Fields of one struct, likewise."""
    roots = {field.name: field.name for field in fields}
    while True:
        owners: dict[str, str] = {}
        clashing: set[str] = set()
        for field in fields:
            for path in _paths(roots[field.name], field.type):
                owner = owners.setdefault(path, field.name)
                if owner != field.name:
                    clashing |= {owner, field.name}
        fresh = {name for name in clashing if roots[name] == name and _SPECIAL.search(name)}
        if not fresh:
            return roots
        for name in fresh:
            roots[name] = _SPECIAL.sub(lambda m: "\\" + m.group(), name)


def _paths(path: str, kind: pa.DataType) -> Iterator[str]:
    """The paths :meth:`RowDigest._feed` names streams under for a column of ``kind``."""
    yield path
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    layout = _layout(kind)
    if layout == "list":
        yield from _paths(f"{path}[]", kind.value_type)
    elif layout == "struct":
        fields = stream_roots(kind)
        for field in kind:
            yield from _paths(f"{path}.{fields[field.name]}", field.type)
    elif layout == "text":
        yield from _paths(f"{path}#text", pa.string())


Layout = Literal["null", "bytes", "list", "struct", "boolean", "number", "text"]


_LAYOUTS: tuple[tuple[Callable[[pa.DataType], bool], Layout], ...] = (
    (pa.types.is_null, "null"),
    (lambda k: pa.types.is_string(k) or pa.types.is_binary(k) or k in LARGE_TYPES, "bytes"),
    (lambda k: pa.types.is_list(k) or pa.types.is_large_list(k), "list"),
    (pa.types.is_struct, "struct"),
    (pa.types.is_boolean, "boolean"),
    (lambda k: pa.types.is_integer(k) or pa.types.is_floating(k) or is_temporal(k), "number"),
)


def _layout(kind: pa.DataType) -> Layout:
    """How :meth:`RowDigest._feed` lays a column of ``kind`` (not a dictionary) out in
    streams; a type it has no layout for (decimals, maps, ...) by its values' text."""
    return next((layout for test, layout in _LAYOUTS if test(kind)), "text")


def _columns_apart(report: pq.ParquetFile) -> bool:
    """Whether each top-level column's name selects its own Parquet columns and no other
    (pyarrow selects by dotted path prefix: ``a.b`` also names ``a``'s field ``b``)."""
    paths = [column.path for column in report.schema]
    start = 0
    for field in report.schema_arrow:
        end = start + _leaves(field.type)
        named = {
            i
            for i, path in enumerate(paths)
            if path == field.name or path.startswith(f"{field.name}.")
        }
        if named != set(range(start, end)):
            return False
        start = end
    return start == len(paths)


def _leaves(kind: pa.DataType) -> int:
    """The Parquet columns a column of type ``kind`` is stored in."""
    if pa.types.is_struct(kind):
        return sum(_leaves(field.type) for field in kind)
    if pa.types.is_map(kind):
        return _leaves(kind.key_type) + _leaves(kind.item_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _leaves(kind.value_type)
    return 1


def _as_numbers(array: pa.Array) -> pa.Array:
    """Numbers and moments as their plain values, nulls as zero (validity is hashed apart)."""
    kind = array.type
    if is_temporal(kind):
        array = array.view(pa.int64() if kind.bit_width == 64 else pa.int32())
    zero = 0.0 if pa.types.is_floating(array.type) else 0
    return array.fill_null(zero)


@dataclass(frozen=True, slots=True)
class Verification:
    """What :func:`verify_report` found; ``problems`` is empty when the report is intact.

    ``edited``: the places (0-based row numbers) of the rows whose values differ from
    the ones written, when the manifest's sketch can name them (``/2``, rows not added or
    removed, fewer than about 300 edited); None when it cannot.
    """

    manifest: Manifest
    rows: int
    rows_sha256: str
    problems: tuple[str, ...]
    edited: tuple[int, ...] | None = None
    edited_ids: tuple[str, ...] = ()  # the session IDs of the first 100 edited rows

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(path: Path) -> Manifest:
    """The manifest stored in the report at ``path``; InputError if it has none."""
    raw = read_footer(path, MANIFEST_KEY, what="manifest")
    try:
        data = json.loads(raw)
        sketch = data.get("sketch")
        manifest = Manifest(
            rows=int(data["rows"]),
            input_sha256=str(data["input_sha256"]),
            rows_sha256=str(data["rows_sha256"]),
            format=str(data["format"]),
            digest=str(data["digest"]),
            sketch=None if sketch is None else str(sketch),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{path} has a damaged manifest: {exc}") from None
    if manifest.format not in MANIFEST_FORMATS:
        raise InputError(f"{path} has a manifest of unknown format {manifest.format!r}")
    return manifest


def digest_of(manifest: Manifest) -> RowDigest | JsonRowDigest:
    """The digest that checks a report of ``manifest``'s format."""
    return RowDigest() if manifest.format == MANIFEST_FORMAT else JsonRowDigest()


def verify_report(
    path: Path, *, input_sha256: str | None = None, rows_sha256: str | None = None
) -> Verification:
    """Recompute the rows' hash of ``path`` and compare it with its manifest.

    ``input_sha256`` / ``rows_sha256``, when given, must match as well: the hash of the
    input the auditor holds, and a digest recorded outside the report.
    """
    manifest = read_manifest(path)
    digest = digest_of(manifest)
    try:
        with pa.OSFile(str(path)) as f:  # one open file: one version of a replaced report
            report = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)
            if isinstance(digest, RowDigest):
                digest.update_report(report)
            else:
                for batch in report.iter_batches(batch_size=READ_BATCH, use_threads=False):
                    digest.update(batch)
                    give_back()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read the rows of {path}: {exc}") from None
    problems = []
    if digest.rows != manifest.rows:
        problems.append(f"the manifest says {manifest.rows} rows, the file holds {digest.rows}")
    edited: tuple[int, ...] | None = None
    if digest.hexdigest() != manifest.rows_sha256:
        problems.append("the rows do not hash to the manifest's rows_sha256: rows were edited")
        edited = _edited(manifest, digest)
    if rows_sha256 is not None and rows_sha256.lower() != manifest.rows_sha256:
        problems.append(
            f"the manifest's rows_sha256 {manifest.rows_sha256} is not the recorded one"
        )
    if input_sha256 is not None and input_sha256 != manifest.input_sha256:
        problems.append(
            f"the input hashes to {input_sha256}, the manifest names {manifest.input_sha256}"
        )
    ids = _ids_at(path, edited[:100]) if edited else ()
    return Verification(manifest, digest.rows, digest.hexdigest(), tuple(problems), edited, ids)


def _edited(manifest: Manifest, digest: RowDigest | JsonRowDigest) -> tuple[int, ...] | None:
    """The rows the manifest's sketch says differ; None when it cannot say."""
    if manifest.sketch is None or not isinstance(digest, RowDigest):
        return None
    if digest.rows != manifest.rows:
        return None
    try:
        written = Sketch.from_text(manifest.sketch)
    except ValueError:
        return None
    found = written.differing(digest.sketch)
    return None if found is None else tuple(found)


def _ids_at(path: Path, places: tuple[int, ...]) -> tuple[str, ...]:
    with path.open("rb") as f:
        ids = pq.read_table(f, columns=["session_id"]).column("session_id")
    return tuple(str(ids[place]) for place in places if place < len(ids))
