"""Session IDs in columns: :class:`SessionIds`, the plan's unique IDs as 16-byte keys.

A session ID is a lower-case UUID (``SESSION_ID_PATTERN``); held as a Python ``str`` it
costs ~85 bytes and a slot in every set or dict that knows it, so a million of them cost
hundreds of MB before a call is made (issue 24: a run flat in its sessions). Here they
are the UUID's 16 bytes in a numpy array, in input order, with a sort order for finding
a row by ID (``np.searchsorted`` through it): 20 bytes a session. A ``str`` is made when an ID is
taken out (one at a time, or a few thousand per batch while iterating), so only the IDs
in flight are Python objects.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from batch.errors import OutputError, StorageError
from batch.store.files import open_private

__all__ = [
    "ANCHORED_PATTERN",
    "SESSION_ID_PATTERN",
    "KeyBuffer",
    "SessionIds",
    "key_of",
    "same_ids",
    "uuid_keys",
]

SESSION_ID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ANCHORED_PATTERN = f"^{SESSION_ID_PATTERN.pattern}$"  # for pyarrow's (RE2) matching

_KEY = np.dtype("S16")
_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])
_NIBBLE = np.zeros(256, np.uint8)
_NIBBLE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_CHUNK = 4096
_FENCE = 16  # keys between two of the sorted first halves a lookup searches first

Keys = npt.NDArray[np.bytes_]


def uuid_keys(ids: pa.Array) -> Keys:
    """The 16-byte keys of canonical session IDs (a string array, each checked already)."""
    n = len(ids)
    if n == 0:
        return np.empty(0, _KEY)
    ids = pa.concat_arrays([ids]) if ids.offset else ids  # a slice: its own buffers
    offsets = np.frombuffer(ids.buffers()[1], np.int32, count=n + 1)
    data = np.frombuffer(ids.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    nibbles = _NIBBLE[data.reshape(n, 36)[:, _DIGITS]]
    packed = np.ascontiguousarray(nibbles[:, 0::2] * 16 + nibbles[:, 1::2], np.uint8)
    return packed.view(_KEY).ravel()


def _texts(raw: npt.NDArray[np.uint8]) -> list[str]:
    """The canonical IDs of keys (16 bytes a row; their 36-character form)."""
    text = np.full((len(raw), 36), ord("-"), np.uint8)
    text[:, _DIGITS[0::2]] = _HEX[raw >> 4]
    text[:, _DIGITS[1::2]] = _HEX[raw & 15]
    flat = text.tobytes().decode("ascii")
    return [flat[i : i + 36] for i in range(0, len(flat), 36)]


def _native(big: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    """Big-endian uint64 values as native ones, in place (no second copy)."""
    if big.dtype == np.uint64:  # a big-endian machine
        return big
    native: npt.NDArray[np.uint64] = big.byteswap(inplace=True).view(np.uint64)
    return native


def same_ids(ids: Sequence[str], other: object) -> bool:
    """``ids`` equals a tuple or list of the same IDs in the same order (a lazy sequence
    of IDs compares as the list it stands for)."""
    if not isinstance(other, tuple | list):
        return NotImplemented  # type: ignore[no-any-return]  # the protocol of __eq__
    return len(other) == len(ids) and all(a == b for a, b in zip(ids, other, strict=True))


def key_of(session_id: str) -> bytes | None:
    """The 16-byte key of a canonical session ID; None for any other text."""
    if len(session_id) != 36 or not SESSION_ID_PATTERN.fullmatch(session_id):
        return None
    return bytes.fromhex(session_id.replace("-", ""))


class KeyBuffer:
    """Keys appended batch by batch into one array allocated to a bound of their number
    up front (its pages are touched as they are written): no chunks concatenated at the
    end, which would hold every key twice. Past the bound it doubles."""

    def __init__(self, bound: int) -> None:
        self._keys = np.empty(max(bound, 1024), _KEY)
        self._size = 0

    def extend(self, keys: Keys) -> None:
        end = self._size + len(keys)
        if end > len(self._keys):
            grown = np.empty(max(end, 2 * len(self._keys)), _KEY)
            grown[: self._size] = self._keys[: self._size]
            self._keys = grown
        self._keys[self._size : end] = keys
        self._size = end

    def __len__(self) -> int:
        return self._size

    def take(self) -> Keys:
        """The keys appended; the buffer lets go of them (and is empty after)."""
        keys, self._keys, self._size = self._keys[: self._size], np.empty(0, _KEY), 0
        return keys


class SessionIds(Sequence[str]):
    """Unique session IDs in input order, as 16-byte keys; :meth:`row` finds one's place.

    Held in input order as two uint64 halves, with the input row of each key in sorted
    order (an int32) and every 16th first half in that order: a lookup searches those
    (``np.searchsorted``, on integers several times faster than on 16-byte strings), then
    the 32 keys between. 20 bytes a session. Equal to a tuple
    or list of the same IDs in the same order (what a plan's IDs were).
    """

    __slots__ = ("_fence", "_hi", "_lo", "_order")

    def __init__(
        self,
        hi: npt.NDArray[np.uint64],
        lo: npt.NDArray[np.uint64],
        order: npt.NDArray[np.int32],
    ) -> None:
        """The keys' halves, in input order; ``order``: the input rows by key."""
        self._hi, self._lo = hi, lo
        self._order = order
        self._fence = hi[order[::_FENCE]]  # every _FENCE-th key's first half, sorted

    @classmethod
    def of(cls, ids: Iterable[str]) -> SessionIds:
        """The IDs of ``ids`` (canonical and unique: checked by the caller)."""
        keys = [key_of(sid) for sid in ids]
        if any(key is None for key in keys):
            raise ValueError("not a session ID")
        return cls.unique(np.array(keys, dtype=_KEY))[0]

    @classmethod
    def unique(cls, keys: Keys) -> tuple[SessionIds, npt.NDArray[np.intp]]:
        """The first occurrence of each key of ``keys``, in their order; and where each
        was in ``keys`` (ascending). A stable sort keeps a repeated key's first place."""
        if len(keys) == 0:
            empty = np.empty(0, np.uint64)
            return cls(empty, empty, np.empty(0, np.int32)), np.empty(0, np.intp)
        order = np.argsort(keys, kind="stable")
        starts = np.empty(len(keys), bool)  # where a run of equal keys starts, by key
        starts[0] = True
        for a in range(1, len(keys), _CHUNK * 16):  # no sorted copy of every key at once
            b = min(a + _CHUNK * 16, len(keys))
            np.not_equal(keys[order[a:b]], keys[order[a - 1 : b - 1]], out=starts[a:b])
        firsts_sorted = order[starts]  # by key: where each key was first
        del order, starts
        halves = keys.view(">u8")  # bytes in order sort as big-endian integers do
        hi_sorted, lo_sorted = (
            _native(halves[0::2][firsts_sorted]),
            _native(halves[1::2][firsts_sorted]),
        )
        size = len(keys)
        del halves, keys  # the caller's last reference, when it passed its own
        first = np.zeros(size, bool)
        first[firsts_sorted] = True
        by_key = (np.cumsum(first, dtype=np.int32) - 1)[firsts_sorted]  # the row of each
        del firsts_sorted
        hi, lo = np.empty_like(hi_sorted), np.empty_like(lo_sorted)
        hi[by_key] = hi_sorted
        del hi_sorted
        lo[by_key] = lo_sorted
        del lo_sorted
        return cls(hi, lo, by_key), np.flatnonzero(first)

    def page_out(self, path: Path, *, mode: int) -> None:
        """Move the keys out of the process's memory: written to ``path`` (owner-only),
        mapped read-only and the file removed at once (the mapping keeps it). Every
        lookup and ``str`` still works, reading the pages it needs: a run's end that
        writes its report from the spill (which has each row's ID) touches none of them
        (issue 24: 20 bytes a session less at a run's peak). On a write error the keys
        stay in memory."""
        n = len(self._order)
        if n == 0 or isinstance(self._hi, np.memmap):
            return
        try:
            fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, what="IDs", mode=mode)
            with os.fdopen(fd, "w+b") as f:  # mapped through the file written, not its name
                for column in (self._hi, self._lo, self._order):
                    column.tofile(f)
                f.flush()
                hi = np.memmap(f, np.uint64, "r", 0, (n,))
                lo = np.memmap(f, np.uint64, "r", 8 * n, (n,))
                order = np.memmap(f, np.int32, "r", 16 * n, (n,))
        except (OSError, OutputError, StorageError):
            return
        finally:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        self._hi, self._lo, self._order = hi, lo, order

    def row(self, session_id: str) -> int | None:
        """The place of ``session_id`` among these IDs; None when it is not one of them."""
        key = key_of(session_id)
        if key is None:
            return None
        hi, lo = np.uint64(int.from_bytes(key[:8])), np.uint64(int.from_bytes(key[8:]))
        start = max(int(self._fence.searchsorted(hi)) - 1, 0) * _FENCE
        span = self._order[start : start + 2 * _FENCE]  # the first key >= hi is in it
        his = self._hi[span]
        at = int(his.searchsorted(hi))
        if at == len(span) or his[at] != hi:
            return None
        if self._lo[span[at]] == lo:
            return int(span[at])
        # IDs sharing their first half (not seen in random UUIDs, but in made-up ones):
        # a binary search on both halves through the sort order, from the first of them
        pair = (int(hi), int(lo))
        found = bisect.bisect_left(self._order, pair, lo=start + at, key=self._pair)
        if found < len(self._order) and self._pair(self._order[found]) == pair:
            return int(self._order[found])
        return None

    def _pair(self, row: int) -> tuple[int, int]:
        """The key at input ``row`` as its two halves (they sort as the key does)."""
        return int(self._hi[row]), int(self._lo[row])

    def _keys(self, rows: slice | npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
        """The 16 bytes of the keys at input ``rows``, one row each."""
        hi = self._hi[rows]
        halves = np.empty((len(hi), 2), ">u8")
        halves[:, 0] = hi
        halves[:, 1] = self._lo[rows]
        return halves.view(np.uint8)

    def take(self, rows: npt.NDArray[np.int32]) -> list[str]:
        """The IDs at ``rows`` (input places), in that order."""
        return _texts(self._keys(rows)) if len(rows) else []

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return _texts(self._keys(index))
        n = len(self)
        at = index + n if index < 0 else index
        if not 0 <= at < n:
            raise IndexError(f"session ID index {index} out of range")
        return _texts(self._keys(slice(at, at + 1)))[0]

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), _CHUNK):
            yield from _texts(self._keys(slice(start, start + _CHUNK)))

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and self.row(value) is not None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SessionIds):
            return (
                np.array_equal(self._hi, other._hi)
                and np.array_equal(self._lo, other._lo)
                and np.array_equal(self._order, other._order)
            )
        return same_ids(self, other)

    __hash__ = None  # type: ignore[assignment]  # equal to tuples: not hashable

    def __repr__(self) -> str:
        shown = ", ".join(repr(sid) for sid in self[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"SessionIds([{shown}{more}], {len(self)} IDs)"
