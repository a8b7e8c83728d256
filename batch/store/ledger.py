"""The answer ledger: which of two answers about one session a report keeps.

A session's results live only minutes in the service, so an answer the tool has fetched
is irreplaceable: no rerun can bring it back. Every run therefore merges what it learns
into what the report (and an unfinished run's journal) already holds, and each session
keeps the most informative answer any run has seen::

    5  RESULT       SUCCEEDED or FAILED, with confidence and images
    4  EXPIRED      the session ended without a result
    3  IN_PROGRESS  pending: asked again until it settles
    2  CREATED      pending
    1  GONE         a definitive per-session error (SessionNotFoundException, ...)
    0  NOTHING      no answer: an unresolved error (throttled, 5xx, ...) or NotAttempted

A higher rank always wins. Between answers of equal rank the newer one wins, except for
results: a result already kept is never replaced by another fetch of it (a rerun with
``--fresh`` asks again but keeps the first result), only by a later version of the same
answer (same ``fetched_at``) whose local steps (evidence check, image save) went further.

Sessions whose kept answer is *settled* (RESULT, EXPIRED, GONE) are not asked again;
pending and unanswered ones are. A pending session that then answers
``SessionNotFoundException`` has disappeared (deleted, or its record aged out): its row
keeps the last status seen, marked ``error_code = SessionGone``, and is settled. Rows
carry ``checks`` (calls made for the session over all runs) and ``checked_at`` (the
last call) beside ``fetched_at`` (when the kept answer arrived).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, NamedTuple, Protocol, overload

import numpy as np
import numpy.typing as npt

from batch.model import Status
from batch.store.ids import SessionIds, same_ids
from batch.store.row import Row

__all__ = [
    "DEFINITIVE_ERRORS",
    "GONE_WHILE_PENDING",
    "LOCAL_STEP_CODES",
    "REFUSED_INPUT",
    "Answer",
    "Brief",
    "Choice",
    "Details",
    "HeldIds",
    "Kept",
    "KeptTable",
    "Ledger",
    "Rank",
    "choose",
    "fold",
    "gone_while_pending",
    "keep",
    "local_steps_due",
    "marked_gone",
    "own",
    "pending",
    "rank",
    "settled",
    "unresolved",
]


class Answer(Protocol):
    """What the rule reads of an answer: a :class:`~batch.store.row.Row`, or a
    :class:`Kept` one."""

    @property
    def status(self) -> Status | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def fetched_at(self) -> datetime | None: ...
    @property
    def checked_at(self) -> datetime | None: ...
    @property
    def checks(self) -> int | None: ...
    @property
    def attempts(self) -> int: ...


DEFINITIVE_ERRORS = frozenset(
    {"SessionNotFoundException", "InvalidParameterException", "InvalidSessionId"}
)
LOCAL_STEP_CODES = frozenset({"EvidenceUnverified", "ImageNotSaved"})
GONE_WHILE_PENDING = "SessionGone"  # the marker on a pending row whose session vanished
_NOT_FOUND = "SessionNotFoundException"
# The row's input was refused (never sent): not unresolved, yet asked once the input is
# fixed (a rerun with a valid region finds no settled answer and asks).
REFUSED_INPUT = frozenset({"InvalidRegion"})


class Rank(IntEnum):
    NOTHING = 0
    GONE = 1
    CREATED = 2
    IN_PROGRESS = 3
    EXPIRED = 4
    RESULT = 5


_BY_STATUS: dict[Status, Rank] = {
    Status.SUCCEEDED: Rank.RESULT,
    Status.FAILED: Rank.RESULT,
    Status.EXPIRED: Rank.EXPIRED,
    Status.IN_PROGRESS: Rank.IN_PROGRESS,
    Status.CREATED: Rank.CREATED,
}


def rank(row: Answer) -> Rank:
    """How informative ``row``'s answer is (see the module docstring)."""
    if row.status is not None:
        return _BY_STATUS[row.status]
    if row.error_code in DEFINITIVE_ERRORS:
        return Rank.GONE
    return Rank.NOTHING


def settled(row: Answer) -> bool:
    """The kept answer is final: the service will say nothing more about the session."""
    return (
        rank(row) in (Rank.RESULT, Rank.EXPIRED, Rank.GONE) or row.error_code == GONE_WHILE_PENDING
    )


def pending(row: Answer) -> bool:
    """The session was still running when last asked: ask again until it settles."""
    return rank(row) in (Rank.CREATED, Rank.IN_PROGRESS) and not settled(row)


def unresolved(row: Answer) -> bool:
    """No answer yet (an error that a rerun may get past), or a local step not done."""
    code = row.error_code
    if code in LOCAL_STEP_CODES:
        return rank(row) == Rank.RESULT
    return rank(row) == Rank.NOTHING and code not in REFUSED_INPUT


def local_steps_due(row: Answer) -> bool:
    """A kept result whose evidence check or image save did not complete: redo locally."""
    return rank(row) == Rank.RESULT and row.error_code in LOCAL_STEP_CODES


def _checks(row: Answer) -> int:
    return row.checks if row.checks is not None else row.attempts


def latest(*moments: datetime | None) -> datetime | None:
    """The latest of ``moments`` that are known; None if none is."""
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _same_observation(old: Answer, new: Answer) -> bool:
    """Both rows record the same call (a journal replayed into the report it fed)."""
    return old.fetched_at is not None and old.fetched_at == new.fetched_at


@dataclass(frozen=True, slots=True)
class Choice:
    """The rule's decision between a kept answer and a new one: who wins, and the
    session's counts (``checked_at`` None: the winner's own, one observation seen twice)."""

    new_wins: bool
    checks: int
    checked_at: datetime | None
    same: bool


def choose(old: Answer, new: Answer) -> Choice:
    """The ranking rule (see the module docstring), on anything with the rule's fields."""
    if _same_observation(old, new):
        # One answer seen twice: its later copy may only have gone further locally.
        return Choice(rank(new) >= rank(old), max(_checks(old), _checks(new)), None, True)
    old_rank, new_rank = rank(old), rank(new)
    newer_wins = new_rank > old_rank or (new_rank == old_rank and new_rank != Rank.RESULT)
    checked_at = latest(old.checked_at, old.fetched_at, new.checked_at, new.fetched_at)
    return Choice(newer_wins, _checks(old) + _checks(new), checked_at, False)


def keep(old: Row | None, new: Row) -> Row:
    """The row to keep for a session, given the kept ``old`` row and a ``new`` one; the
    columns only the losing row has (kept input columns, reconciliation, region of an
    earlier run) stay with the winner: a run that does not produce them never drops them.
    """
    if old is None:
        return replace(new, checks=_checks(new), checked_at=latest(new.checked_at, new.fetched_at))
    if gone_while_pending(old, new):
        new = marked_gone(old, new)
    choice = choose(old, new)
    winner, loser = (new, old) if choice.new_wins else (old, new)
    checked_at = winner.checked_at if choice.same else choice.checked_at
    row = replace(winner, checks=choice.checks, checked_at=checked_at)
    return row.with_extras(loser.extras)


@dataclass(slots=True)
class Kept:
    """A session's kept answer in a few fields (what the rule and the counts read) and
    ``where`` its whole row is (a place in the run's :class:`~batch.store.spill.Spill`):
    what a run holds per session instead of the row (~0.2 KB, not ~4 KB)."""

    status: Status | None
    error_code: str | None
    fetched_at: datetime | None
    checked_at: datetime | None
    checks: int
    attempts: int
    where: int

    @classmethod
    def of(cls, row: Row, where: int) -> Kept:
        return cls(
            row.status,
            row.error_code,
            row.fetched_at,
            row.checked_at,
            row.checks or 0,
            row.attempts,
            where,
        )


def fold(old: Kept | None, row: Row, where: int) -> Kept:
    """:func:`keep` on the few fields: the kept answer once ``row`` (at ``where``) is seen."""
    if old is None:
        kept = Kept.of(row, where)
        kept.checks = _checks(row)
        kept.checked_at = latest(row.checked_at, row.fetched_at)
        return kept
    choice = choose(old, row)
    kept = Kept.of(row, where) if choice.new_wins else replace(old)
    kept.checks = choice.checks
    if not choice.same:
        kept.checked_at = choice.checked_at
    return kept


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_NO_TIME = -(2**63)  # a moment that is None


def _micros(moment: datetime | None) -> int:
    if moment is None:
        return _NO_TIME
    if moment.tzinfo is None:  # the schema's moments are UTC
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICRO


def _moment(micros: int) -> datetime | None:
    return None if micros == _NO_TIME else _EPOCH + timedelta(microseconds=micros)


class Brief(NamedTuple):
    """What a run's closing counts and its plan read of a kept answer."""

    status: Status | None
    error_code: str | None
    pending: bool
    unresolved: bool
    settled: bool = False
    steps_due: bool = False  # :func:`local_steps_due`


class Details(NamedTuple):
    """A spilled row's own moments and counts: what :meth:`KeptTable.get` reads back of
    an answer it does not hold (the row's ``checks``, ``checked_at`` as written)."""

    fetched_at: datetime | None
    checked_at: datetime | None
    checks: int | None
    attempts: int

    @classmethod
    def of(cls, values: Mapping[str, object]) -> Details:
        """The details of a row's columns (:meth:`~batch.store.row.Row.flat`)."""
        fetched, checked = values.get("fetched_at"), values.get("checked_at")
        checks, attempts = values.get("checks"), values.get("attempts")
        return cls(
            fetched if isinstance(fetched, datetime) else None,
            checked if isinstance(checked, datetime) else None,
            checks if isinstance(checks, int) else None,
            attempts if isinstance(attempts, int) else 0,
        )


ReadDetails = Callable[[int], Details]


def own(details: Details) -> tuple[int, datetime | None]:
    """The counts a row kept on its own carries: :func:`fold` of it alone."""
    checks = details.checks if details.checks is not None else details.attempts
    return checks, latest(details.checked_at, details.fetched_at)


class KeptTable:
    """The :class:`Kept` answer of every session a run holds, in columns: numpy arrays
    for the (status, error) pair (a code), the place of the answer's row in the spill and
    a flag byte (held, answered in this run, detailed), and the first-seen order.

    A session's row is its place in the plan's IDs (``index``, a
    :class:`~batch.store.ids.SessionIds`), found through that index: no dict or ``str``
    per session; the arrays are allocated to the plan's size up front (pages are touched
    as rows are written). A session not in the plan (an invalid cell, a row of the
    report or journal from another input) gets a row after the plan's through a dict.

    The moments and counts (``fetched_at``, ``checked_at``, ``checks``, ``attempts``) of
    an answer whose row in the spill carries them (``put(..., plain=True)``: the kept
    answer is that row's own, as every first answer is) are not held: :meth:`get` reads
    them back through ``read`` (the spill; a pending session asked again, in about the
    order it was answered, reads a spill batch once for all of its pending rows). An
    answer the rule merged keeps them in a side table, 28 bytes more. 10 bytes a session
    otherwise (issue 24: a run flat in its sessions; was 36).
    """

    _FIELDS = (
        ("answer", np.uint8),  # the (status, error) pair, by code (wider past 255 pairs)
        ("where", np.int32),  # a place in the spill (rows, not bytes), or a detail slot
        ("flags", np.uint8),
    )
    _DETAILS = (
        ("fetched", np.int64),
        ("checked", np.int64),
        ("checks", np.int32),
        ("attempts", np.int32),
        ("where", np.int32),
    )

    def __init__(self, index: SessionIds | None = None, read: ReadDetails | None = None) -> None:
        self._index = index
        self._read = read
        self._planned = len(index) if index is not None else 0
        self._extra: dict[str, int] = {}  # a session not in the plan -> its row
        self._extra_ids: list[str] = []
        self._answers: list[tuple[Status | None, str | None]] = [(None, None)]  # by code
        self._answer_code: dict[tuple[Status | None, str | None], int] = {(None, None): 0}
        self._columns = _zeros(self._FIELDS, max(self._planned, 64))
        self._details = _zeros(self._DETAILS, 64)  # by slot
        self._slots = 0  # slots used
        self._free: list[int] = []  # slots given back
        self._order = array("i")  # rows, first seen first
        self._briefs: dict[int, Brief] = {}
        self._last: tuple[str, int | None] = ("", None)  # the last lookup: asked in turns

    def _answer_of(self, status: Status | None, error: str | None) -> int:
        """The code of the (status, error) pair (a new one gets the next)."""
        key = (status, error)
        code = self._answer_code.get(key)
        if code is None:
            code = self._answer_code[key] = len(self._answers)
            self._answers.append(key)
            column = self._columns["answer"]
            if code > np.iinfo(column.dtype).max:  # 256 pairs: two bytes each from now
                self._columns["answer"] = column.astype(np.min_scalar_type(code))
        return code

    def _row(self, session_id: str) -> int | None:
        """The session's row, held or not (None: not in the plan, not seen)."""
        last, row = self._last
        if last == session_id:
            return row
        row = self._extra.get(session_id)
        if row is None and self._index is not None:
            row = self._index.row(session_id)
        self._last = (session_id, row)
        return row

    def _held(self, session_id: str) -> int | None:
        if not self._order:  # nothing held yet (a fresh run's plan): no search
            return None
        row = self._row(session_id)
        return row if row is not None and self._columns["flags"][row] & _HELD else None

    def get(self, session_id: str) -> Kept | None:
        i = self._held(session_id)
        return None if i is None else self._kept_at(i)

    def _kept_at(self, i: int) -> Kept:
        c = self._columns
        status, error = self._answers[c["answer"][i]]
        if c["flags"][i] & _DETAILED:
            d, slot = self._details, int(c["where"][i])
            return Kept(
                status,
                error,
                _moment(int(d["fetched"][slot])),
                _moment(int(d["checked"][slot])),
                int(d["checks"][slot]),
                int(d["attempts"][slot]),
                int(d["where"][slot]),
            )
        where = int(c["where"][i])
        details = self._details_at(where)
        checks, checked_at = own(details)
        return Kept(status, error, details.fetched_at, checked_at, checks, details.attempts, where)

    def _details_at(self, where: int) -> Details:
        if self._read is None:  # pragma: no cover  # put() holds every answer without it
            raise RuntimeError("a kept answer not held, and no spill to read it from")
        return self._read(where)

    def spot(self, session_id: str) -> tuple[int, Kept | None]:
        """Where the session's kept row is in the spill, and its kept answer when the
        table holds it (None: the row's own counts, :func:`own`). KeyError: not held."""
        i = self._held(session_id)
        if i is None:
            raise KeyError(session_id)
        return self._spot_at(i)

    def _spot_at(self, i: int) -> tuple[int, Kept | None]:
        if self._columns["flags"][i] & _DETAILED:
            kept = self._kept_at(i)
            return kept.where, kept
        return int(self._columns["where"][i]), None

    def spots(self, size: int) -> Iterator[list[tuple[int, Kept | None]]]:
        """:meth:`spot` of every held session, in first-seen order, ``size`` at a time:
        by their rows, no ID looked up."""
        for start in range(0, len(self._order), size):
            yield [self._spot_at(i) for i in self._order[start : start + size]]

    def put(self, session_id: str, kept: Kept, *, plain: bool = False) -> None:
        """Keep ``kept`` as the session's answer (a new session goes last). ``plain``:
        ``kept`` is its spilled row's own answer (:func:`fold` of that row alone), so its
        moments and counts need not be held (read back through ``read``)."""
        i = self._row(session_id)
        if i is None:
            i = self._add_extra(session_id)
        c = self._columns
        flags = int(c["flags"][i])
        if not flags & _HELD:
            flags |= _HELD
            self._order.append(i)
        answer = self._answer_of(kept.status, kept.error_code)
        c["answer"][i] = answer
        if plain and self._read is not None:
            if flags & _DETAILED:
                self._free.append(int(c["where"][i]))
            c["flags"][i] = flags & ~_DETAILED
            c["where"][i] = kept.where
            return
        slot = int(c["where"][i]) if flags & _DETAILED else self._slot()
        c["flags"][i] = flags | _DETAILED
        c["where"][i] = slot
        d = self._details
        d["fetched"][slot] = _micros(kept.fetched_at)
        d["checked"][slot] = _micros(kept.checked_at)
        d["checks"][slot] = kept.checks
        d["attempts"][slot] = kept.attempts
        d["where"][slot] = kept.where

    def _slot(self) -> int:
        if self._free:
            return self._free.pop()
        slot = self._slots
        self._slots += 1
        if slot >= len(self._details["where"]):
            self._details = _grown(self._details)
        return slot

    def _add_extra(self, session_id: str) -> int:
        row = self._planned + len(self._extra_ids)
        self._extra[session_id] = row
        self._extra_ids.append(session_id)
        self._last = (session_id, row)
        if row >= len(self._columns["flags"]):
            self._columns = _grown(self._columns)
        return row

    def brief(self, session_id: str) -> Brief | None:
        """The session's status, error and whether it is pending, unresolved, settled."""
        i = self._held(session_id)
        if i is None:
            return None
        return self._brief(int(self._columns["answer"][i]))

    def briefs(self, session_ids: Iterable[str]) -> Iterator[tuple[Brief, int]]:
        """The briefs of the held sessions of ``session_ids``, each with how many have it:
        for the plan's IDs (``index`` itself), read off the columns without a lookup."""
        if session_ids is self._index and self._index is not None:
            counts: dict[int, int] = {}
            for start in range(0, self._planned, _COUNTED):  # a bounded temporary at a time
                for code, n in self._codes(start, min(start + _COUNTED, self._planned)):
                    counts[code] = counts.get(code, 0) + n
            for code, n in counts.items():
                yield self._brief(code), n
            return
        for session_id in session_ids:
            brief = self.brief(session_id)
            if brief is not None:
                yield brief, 1

    def _codes(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """The answer codes of the held rows from ``start`` to ``end``, each with how many
        rows have it."""
        c = self._columns
        held = (c["flags"][start:end] & _HELD).astype(bool)
        counts = np.bincount(c["answer"][start:end][held], minlength=len(self._answers))
        return ((code, n) for code, n in enumerate(counts.tolist()) if n)

    def _brief(self, code: int) -> Brief:
        brief = self._briefs.get(code)
        if brief is None:
            status, error = self._answers[code]
            a = Kept(status, error, None, None, 0, 0, 0)
            brief = Brief(status, error, pending(a), unresolved(a), settled(a), local_steps_due(a))
            self._briefs[code] = brief
        return brief

    def finish(self, session_id: str) -> bool:
        """Mark a held session answered in this run; whether it was not yet."""
        i = self._held(session_id)
        if i is None:
            raise KeyError(session_id)
        flags = self._columns["flags"]
        if flags[i] & _FINISHED:
            return False
        flags[i] |= _FINISHED
        return True

    def finished(self, session_id: str) -> bool:
        i = self._held(session_id)
        return i is not None and bool(self._columns["flags"][i] & _FINISHED)

    def finished_rows(self) -> npt.NDArray[np.bool_] | None:
        """Which of the plan's sessions are finished, by their place in it (None: no
        plan): what a run's end reads instead of asking about each session."""
        if self._index is None:
            return None
        return (self._columns["flags"][: self._planned] & _FINISHED).astype(bool)

    def held(self) -> HeldIds:
        """The sessions held, in first-seen order (a ``str`` made as each is taken)."""
        return HeldIds(self._order, self._index, self._planned, self._extra_ids)

    def __len__(self) -> int:
        return len(self._order)


_HELD, _FINISHED, _DETAILED = 1, 2, 4
_COUNTED = 65_536  # rows counted at a time (:meth:`KeptTable.briefs`)

Columns = dict[str, npt.NDArray[Any]]


def _zeros(fields: tuple[tuple[str, type[np.generic]], ...], size: int) -> Columns:
    return {name: np.zeros(size, kind) for name, kind in fields}


def _grown(columns: Columns) -> Columns:
    """``columns`` at twice their size (the new cells zero)."""
    grown = {}
    for name, column in columns.items():
        grown[name] = np.zeros(len(column) * 2, column.dtype)
        grown[name][: len(column)] = column
    return grown


class HeldIds(Sequence[str]):
    """The IDs of a :class:`KeptTable`'s rows in first-seen order, made as they are taken:
    the plan's from its index, the others from the table's list."""

    def __init__(
        self, order: array[int], index: SessionIds | None, planned: int, extra: list[str]
    ) -> None:
        self._order, self._index, self._planned, self._extra = order, index, planned, extra

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, at: int) -> str: ...

    @overload
    def __getitem__(self, at: slice) -> list[str]: ...

    def __getitem__(self, at: int | slice) -> str | list[str]:
        if isinstance(at, int):
            return self._ids(np.array([self._order[at]], np.int32))[0]
        return self._ids(np.array(self._order[at], np.int32))

    def _ids(self, rows: npt.NDArray[np.int32]) -> list[str]:
        planned = rows < self._planned
        if self._index is not None and planned.all():
            return self._index.take(rows)
        found = iter(self._index.take(rows[planned]) if self._index is not None else [])
        extra = self._extra
        return [
            next(found) if p else extra[r - self._planned]
            for r, p in zip(rows.tolist(), planned.tolist(), strict=True)
        ]

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self._order), 4096):
            yield from self[start : start + 4096]

    def __eq__(self, other: object) -> bool:
        return same_ids(self, other)

    __hash__ = None  # type: ignore[assignment]  # equal to lists: not hashable


def gone_while_pending(old: Answer, new: Answer) -> bool:
    """``new`` says SessionNotFound of a session ``old`` saw pending: it vanished."""
    return pending(old) and new.status is None and new.error_code == _NOT_FOUND


def marked_gone(old: Row, new: Row) -> Row:
    """The answer to keep when a pending session vanished: its last row (``old``, whole)
    with its status, marked ``SessionGone`` as of ``new``'s call, which then wins by the
    usual rule (same rank, newer) and is settled."""
    when = new.fetched_at or new.checked_at
    return replace(
        old,
        error_code=GONE_WHILE_PENDING,
        error_message=f"the session disappeared while {old.status} (SessionNotFoundException)",
        fetched_at=when if when is not None else old.fetched_at,
        checks=_checks(new),
        checked_at=latest(new.checked_at, new.fetched_at),
    )


class Ledger:
    """The kept row of every session seen, in first-seen order."""

    def __init__(self, rows: Iterable[Row] = ()) -> None:
        self._rows: dict[str, Row] = {}
        for row in rows:
            self.add(row)

    def add(self, row: Row) -> Row:
        """Merge ``row`` into the ledger; return the row now kept for its session."""
        kept = keep(self._rows.get(row.session_id), row)
        self._rows[row.session_id] = kept
        return kept

    def replace(self, row: Row) -> None:
        """Put ``row`` as it is: the kept answer itself with a local step redone (the
        columns only the row it replaces has stay)."""
        old = self._rows.get(row.session_id)
        self._rows[row.session_id] = row.with_extras(old.extras) if old else row

    def held(self) -> list[str]:
        """The sessions held, in first-seen order (:class:`~batch.store.merge.Held`)."""
        return list(self._rows)

    def rows(self, session_ids: Sequence[str]) -> list[Row]:
        """The kept rows of ``session_ids``, in that order."""
        return [self._rows[sid] for sid in session_ids]

    def columns(self, session_ids: Sequence[str]) -> list[dict[str, object]]:
        """The kept rows of ``session_ids`` as their columns (:meth:`Row.flat`)."""
        return [self._rows[sid].flat() for sid in session_ids]

    def get(self, session_id: str) -> Row | None:
        return self._rows.get(session_id)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows.values())
