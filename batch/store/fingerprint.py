"""A 64-bit fingerprint of every row of a record batch, computed column by column.

The manifest (``liveness-audit-manifest/2``, :mod:`batch.store.manifest`) hashes a report
as the SHA-256 of its rows' fingerprints in file order, so it is independent of how rows
are grouped into batches and row groups, and costs a few vectorised passes per column
instead of one canonical JSON line per row (``/1``: about 30 s per million rows).

A row's fingerprint mixes, for every column in order, the column's name and the value's
hash; a value hashes by its type: strings and binaries with BLAKE2b (each distinct value
once per batch), numbers, booleans and timestamps by their 64-bit pattern, lists by their
elements and positions, structs by their fields; a null hashes to its own constant. A
changed value, a renamed column or a moved row changes the fingerprint (a forged row
that keeps its fingerprint is a 64-bit second preimage).
"""

from __future__ import annotations

import base64
import hashlib
import zlib

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "LARGE_TYPES",
    "Hashes",
    "Sketch",
    "first_fingerprints",
    "fold_column",
    "is_temporal",
    "list_lengths",
    "row_fingerprints",
    "spans",
]

Hashes = npt.NDArray[np.uint64]

_NULL = np.uint64(0x9E3779B97F4A7C15)
_K1 = np.uint64(0xBF58476D1CE4E5B9)
_K2 = np.uint64(0x94D049BB133111EB)
_POS = np.uint64(0xD6E8FEB86659FD93)


def _mix(values: Hashes) -> Hashes:
    """splitmix64's finaliser, element-wise (uint64 arithmetic wraps)."""
    z = values.copy()
    z ^= z >> np.uint64(30)
    z *= _K1
    z ^= z >> np.uint64(27)
    z *= _K2
    z ^= z >> np.uint64(31)
    return z


def _text_hash(data: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little"))


_NAME_CACHE: dict[str, np.uint64] = {}


def _name(name: str) -> np.uint64:
    if name not in _NAME_CACHE:
        _NAME_CACHE[name] = _text_hash(b"column:" + name.encode())
    return _NAME_CACHE[name]


def _with_nulls(array: pa.Array, hashes: Hashes) -> Hashes:
    if array.null_count:
        valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
        hashes = np.where(valid, hashes, _NULL)
    return hashes


def list_lengths(array: pa.Array) -> npt.NDArray[np.int64]:
    """The length of each list (0 for a null one), as :meth:`flatten` lays them out."""
    lengths = pc.list_value_length(array).fill_null(0)
    counted: npt.NDArray[np.int64] = lengths.to_numpy(zero_copy_only=False).astype(np.int64)
    return counted


def spans(array: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """The offsets (from 0) and the bytes of a string or binary array, slicing honoured."""
    wide = array.type in LARGE_TYPES
    if array.null_count:  # a null's slot may be backed by bytes: make it empty
        empty = (
            "" if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) else b""
        )
        array = array.fill_null(empty)
    _validity, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64 if wide else np.int32)
    offsets = offsets[array.offset : array.offset + len(array) + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else None
    if data is None or not len(offsets):
        return np.zeros(len(array) + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    return offsets - offsets[0], data[offsets[0] : offsets[-1]]


def _binary_hashes(array: pa.Array) -> Hashes:
    """SipHash of each distinct value (pandas' vectorised ``hash_array``), taken per row."""
    if array.null_count == len(array):
        return np.full(len(array), _NULL, dtype=np.uint64)
    encoded = pc.dictionary_encode(array)
    distinct = encoded.dictionary
    if not (pa.types.is_string(distinct.type) or pa.types.is_large_string(distinct.type)):
        distinct = pa.array([value.hex() for value in distinct.to_pylist()])
    table = pd.util.hash_array(distinct.to_numpy(zero_copy_only=False), categorize=False)
    indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return _with_nulls(array, table.astype(np.uint64)[indices])


LARGE_TYPES = (pa.large_string(), pa.large_binary())


def _fixed_hashes(array: pa.Array) -> Hashes:
    """Numbers, booleans, timestamps, dates: their value's bit pattern, mixed."""
    kind = array.type
    if pa.types.is_boolean(kind):
        raw = array.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint64)
    elif pa.types.is_floating(kind):
        floats = array.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        raw = floats.view(np.uint64)
    else:
        storage = pa.int64() if not pa.types.is_unsigned_integer(kind) else pa.uint64()
        ints = array.view(_SAME_WIDTH[kind.bit_width]) if is_temporal(kind) else array
        raw = ints.cast(storage).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
    return _with_nulls(array, _mix(raw ^ _K2))


_SAME_WIDTH = {32: pa.int32(), 64: pa.int64()}


def is_temporal(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_time(kind)
        or pa.types.is_duration(kind)
    )


def _list_hashes(array: pa.ListArray | pa.LargeListArray) -> Hashes:
    """Each list: its length and every element mixed with its position."""
    lengths = list_lengths(array)
    starts = np.cumsum(lengths) - lengths
    child = array.flatten()
    inner = _hashes(child)
    positions = np.arange(len(child), dtype=np.int64) - np.repeat(starts, lengths)
    placed = _mix(inner + positions.astype(np.uint64) * _POS)
    sums = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(placed, dtype=np.uint64)])
    per_row = sums[starts + lengths] - sums[starts]
    return _with_nulls(array, _mix(per_row ^ lengths.astype(np.uint64) * _K1))


def _struct_hashes(array: pa.StructArray) -> Hashes:
    fields = array.flatten()
    hashes = np.full(len(array), _K1, dtype=np.uint64)
    for field, child in zip(array.type, fields, strict=True):
        hashes = _mix(hashes ^ _name(field.name) ^ _hashes(child))
    return _with_nulls(array, hashes)


def _hashes(array: pa.Array) -> Hashes:  # noqa: PLR0911  # one return per kind of type
    """One uint64 per element of ``array`` (see the module docstring)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.cast(kind.value_type)
        kind = array.type
    if pa.types.is_null(kind):
        return np.full(len(array), _NULL, dtype=np.uint64)
    if pa.types.is_string(kind) or pa.types.is_binary(kind) or kind in LARGE_TYPES:
        return _binary_hashes(array)
    if pa.types.is_fixed_size_binary(kind):
        return _binary_hashes(array.cast(pa.binary()))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _list_hashes(array)
    if pa.types.is_struct(kind):
        return _struct_hashes(array)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return _fixed_hashes(array)
    if is_temporal(kind):
        return _fixed_hashes(array)
    # anything else (decimals, maps, ...): its text, hashed like a string
    return _binary_hashes(pa.array([None if v is None else repr(v) for v in array.to_pylist()]))


def row_fingerprints(batch: pa.RecordBatch | pa.Table) -> Hashes:
    """The fingerprint of each row of ``batch`` (uint64, one per row)."""
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else None
        if batch is None:
            return np.zeros(0, dtype=np.uint64)
    hashes = first_fingerprints(batch.num_rows)
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        hashes = fold_column(hashes, name, column)
    return hashes


def first_fingerprints(rows: int) -> Hashes:
    """The fingerprints of ``rows`` rows before any column is folded in."""
    return np.full(rows, _POS, dtype=np.uint64)


def fold_column(hashes: Hashes, name: str, column: pa.Array) -> Hashes:
    """``hashes`` (the rows' fingerprints so far) with the rows' values of column ``name``
    folded in: :func:`row_fingerprints` folds the columns in order, and so may a reader
    that holds one column at a time."""
    return _mix(hashes ^ _name(name) ^ _hashes(column))


_TABLES = 3  # cells a row goes into, one in each third of the sketch
_WIDTH = 256  # cells per third: about 300 edited rows can be named
_SEEDS = (
    np.uint64(0x243F6A8885A308D3),
    np.uint64(0x13198A2E03707344),
    np.uint64(0xA4093822299F31D0),
)


def _check(index: Hashes, fingerprint: Hashes) -> Hashes:
    return _mix(index * _K2 ^ fingerprint ^ _POS)


class Sketch:
    """What tells which rows of a report changed: an invertible Bloom lookup table.

    Each row (its place and fingerprint) is added to three of ``3 x 256`` cells (count,
    XOR of places, of fingerprints, of a check). The sketch of a report as written,
    minus that of the file as it is now, holds only the rows that differ; peeling it
    names them (an edited row shows as its old and its new version at one place) as long
    as fewer than about 300 rows differ. 21 KB whatever the report's size.
    """

    def __init__(self) -> None:
        size = _TABLES * _WIDTH
        self.count = np.zeros(size, dtype=np.int32)
        self.places = np.zeros(size, dtype=np.uint64)
        self.prints = np.zeros(size, dtype=np.uint64)
        self.checks = np.zeros(size, dtype=np.uint64)
        self.rows = 0

    def _cells(self, index: Hashes, fingerprint: Hashes) -> list[npt.NDArray[np.int64]]:
        both = _mix(index ^ _mix(fingerprint))
        return [
            (_mix(both ^ seed) % np.uint64(_WIDTH)).astype(np.int64) + table * _WIDTH
            for table, seed in enumerate(_SEEDS)
        ]

    def add(self, fingerprints: Hashes) -> None:
        """The next rows of the report, in order."""
        if not len(fingerprints):
            return
        index = np.arange(self.rows, self.rows + len(fingerprints), dtype=np.uint64)
        self.rows += len(fingerprints)
        check = _check(index, fingerprints)
        for cells in self._cells(index, fingerprints):
            self.count += np.bincount(cells, minlength=len(self.count)).astype(np.int32)
            order = np.argsort(cells, kind="stable")
            ordered = cells[order]
            starts = np.flatnonzero(np.diff(ordered, prepend=-1))
            hit = ordered[starts]
            for field, values in (
                (self.places, index),
                (self.prints, fingerprints),
                (self.checks, check),
            ):
                field[hit] ^= np.bitwise_xor.reduceat(values[order], starts)

    def to_text(self) -> str:
        raw = b"".join(
            a.astype(a.dtype.newbyteorder("<")).tobytes()
            for a in (self.count, self.places, self.prints, self.checks)
        )
        return base64.b64encode(zlib.compress(raw, 9)).decode()

    @classmethod
    def from_text(cls, text: str) -> Sketch:
        """The sketch a manifest carries; ValueError if it is damaged."""
        try:
            raw = zlib.decompress(base64.b64decode(text, validate=True))
        except (ValueError, zlib.error) as exc:
            raise ValueError(f"damaged row sketch: {exc}") from None
        size = _TABLES * _WIDTH
        if len(raw) != size * 28:
            raise ValueError("damaged row sketch: wrong size")
        sketch = cls()
        sketch.count = np.frombuffer(raw[: size * 4], dtype="<i4").astype(np.int32)
        rest = np.frombuffer(raw[size * 4 :], dtype="<u8").astype(np.uint64)
        sketch.places, sketch.prints, sketch.checks = (
            rest[:size],
            rest[size : 2 * size],
            rest[2 * size :],
        )
        return sketch

    def differing(self, other: Sketch) -> list[int] | None:
        """The places of the rows that differ between ``self`` and ``other`` (sorted);
        None when too many differ to name them."""
        count = self.count.astype(np.int64) - other.count
        places, prints = self.places ^ other.places, self.prints ^ other.prints
        checks = self.checks ^ other.checks
        found: set[int] = set()
        progress = True
        while progress:
            progress = False
            pure = np.flatnonzero((np.abs(count) == 1) & (checks == _check(places, prints)))
            for cell in pure:
                place, fp = places[cell : cell + 1].copy(), prints[cell : cell + 1].copy()
                check = _check(place, fp)
                sign = count[cell]
                if abs(sign) != 1 or checks[cell] != check[0]:
                    continue  # no longer pure: another row was peeled out of it
                found.add(int(place[0]))
                for cells in self._cells(place, fp):
                    c = int(cells[0])
                    count[c] -= sign
                    places[c] ^= place[0]
                    prints[c] ^= fp[0]
                    checks[c] ^= check[0]
                progress = True
        if count.any() or places.any() or prints.any():
            return None
        return sorted(found)
