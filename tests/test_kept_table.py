"""The run's kept answers in columns (:class:`batch.store.ledger.KeptTable`): what goes in
comes out, in first-seen order, and a session costs a few typed array cells, not objects."""

from __future__ import annotations

import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from batch.model import Status
from batch.store import ledger
from batch.store.ids import SessionIds
from batch.store.ledger import (
    Details,
    Kept,
    KeptTable,
    local_steps_due,
    own,
    pending,
    settled,
    unresolved,
)

T0 = datetime(2026, 12, 4, 23, 0, 0, 123456, tzinfo=UTC)


def kept(n: int, status: Status | None = Status.SUCCEEDED, error: str | None = None) -> Kept:
    moment = T0 + timedelta(seconds=n)
    return Kept(status, error, moment, moment + timedelta(microseconds=1), n % 7, n % 3, n)


def test_a_kept_answer_comes_back_as_it_went_in_nones_and_microseconds_included() -> None:
    table = KeptTable()
    answers = {
        "a": kept(1),
        "b": Kept(None, "ThrottlingException", None, T0, 0, 2, 5),
        "c": Kept(Status.IN_PROGRESS, None, T0, None, 3, 1, 9),
    }
    for sid, answer in answers.items():
        table.put(sid, answer)
    for sid, answer in answers.items():
        assert table.get(sid) == answer
    assert table.get("missing") is None
    assert table.get("a").fetched_at.tzinfo is not None  # type: ignore[union-attr]


def test_a_later_answer_replaces_the_kept_one_in_place_and_order_stays_first_seen() -> None:
    table = KeptTable()
    for sid in ("x", "y", "z"):
        table.put(sid, kept(0, Status.IN_PROGRESS))
    table.put("x", kept(4))
    assert table.held() == ["x", "y", "z"]
    assert table.get("x") == kept(4)
    assert len(table) == 3


def test_a_session_is_finished_once_and_an_unknown_one_is_not_finished() -> None:
    table = KeptTable()
    table.put("a", kept(1))
    assert not table.finished("a")
    assert table.finish("a") is True
    assert table.finish("a") is False
    assert table.finished("a")
    assert not table.finished("b")


def test_the_brief_says_pending_and_unresolved_as_the_rule_does() -> None:
    table = KeptTable()
    cases = [
        (Status.SUCCEEDED, None),
        (Status.IN_PROGRESS, None),
        (Status.CREATED, "SessionGone"),
        (None, "ThrottlingException"),
        (None, "SessionNotFoundException"),
        (Status.FAILED, "EvidenceUnverified"),
        (None, "InvalidRegion"),
    ]
    for n, (status, error) in enumerate(cases):
        table.put(str(n), kept(n, status, error))
    for n, (status, error) in enumerate(cases):
        answer = kept(n, status, error)
        brief = table.brief(str(n))
        assert brief is not None
        assert (brief.status, brief.error_code) == (status, error)
        assert (brief.pending, brief.unresolved) == (pending(answer), unresolved(answer))
        assert (brief.settled, brief.steps_due) == (settled(answer), local_steps_due(answer))
    assert table.brief("missing") is None


class Spilled:
    """A stand-in for the spill: each place's row details, and the places read back."""

    def __init__(self) -> None:
        self.rows: dict[int, Details] = {}
        self.read: list[int] = []

    def __call__(self, where: int) -> Details:
        self.read.append(where)
        return self.rows[where]


def test_an_answer_that_is_its_rows_own_is_read_back_from_the_spill_not_held() -> None:
    spill = Spilled()
    spill.rows[7] = Details(T0, None, None, 2)  # checks: the attempts; checked: fetched
    spill.rows[8] = Details(T0, T0, 1, 1)
    table = KeptTable(read=spill)
    table.put("a", Kept(Status.SUCCEEDED, None, T0, T0, 2, 2, 7), plain=True)
    table.put("pending", Kept(Status.IN_PROGRESS, None, T0, T0, 1, 1, 8), plain=True)
    assert table.get("a") == Kept(Status.SUCCEEDED, None, T0, T0, 2, 2, 7)
    assert table.get("pending") == Kept(Status.IN_PROGRESS, None, T0, T0, 1, 1, 8)
    assert spill.read == [7, 8]
    assert table.spot("a") == (7, None)
    assert table.brief("a") == (Status.SUCCEEDED, None, False, False, True, False)


def test_an_answer_the_rule_merged_keeps_its_moments_and_counts_in_memory() -> None:
    spill = Spilled()
    table = KeptTable(read=spill)
    merged = Kept(Status.SUCCEEDED, None, T0, T0 + timedelta(seconds=5), 4, 1, 4)
    table.put("merged", merged)
    assert table.get("merged") == merged
    assert table.spot("merged") == (4, merged)
    assert spill.read == []


def test_an_answer_held_then_plain_again_gives_its_slot_to_the_next() -> None:
    spill = Spilled()
    spill.rows[9] = Details(T0, T0, 1, 1)
    table = KeptTable(read=spill)
    table.put("a", Kept(Status.IN_PROGRESS, None, T0, T0, 1, 1, 3))
    table.put("a", Kept(Status.SUCCEEDED, None, T0, T0, 1, 1, 9), plain=True)
    table.put("b", Kept(None, "ThrottlingException", None, T0, 0, 5, 11))
    assert table.get("a") == Kept(Status.SUCCEEDED, None, T0, T0, 1, 1, 9)
    assert table.get("b") == Kept(None, "ThrottlingException", None, T0, 0, 5, 11)
    assert table._slots == 1  # the slot "a" held was taken by "b"


def _bytes_for(sessions: int) -> int:
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(sessions)]
    answers = [kept(n) for n in range(sessions)]  # made before measuring: the run's own
    tracemalloc.start()
    try:
        table = KeptTable(read=Spilled())
        for sid, answer in zip(ids, answers, strict=True):
            table.put(sid, answer, plain=True)
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(table) == sessions
    return size


def test_a_settled_session_costs_a_few_array_cells_and_a_dict_slot_not_objects() -> None:
    few, many = _bytes_for(2_000), _bytes_for(20_000)
    per_session = (many - few) / 18_000
    # a dict slot and its int (~65 bytes) and 10 bytes of array cells, measured 75; 120
    # with the moments and counts held, a Kept object with two datetimes in a dict ~250
    # (a margin: the dict's growth steps are uneven)
    assert per_session < 100, f"{per_session:.0f} bytes a session"


def test_past_256_distinct_answers_each_still_comes_back_as_it_went_in() -> None:
    table = KeptTable()
    for n in range(300):  # a code a (status, error) pair: past a byte's worth
        table.put(f"s{n}", Kept(None, f"Error{n}", None, T0, 0, 1, n))
    assert [table.get(f"s{n}") for n in (0, 255, 256, 299)] == [
        Kept(None, f"Error{n}", None, T0, 0, 1, n) for n in (0, 255, 256, 299)
    ]
    assert dict(table.briefs([f"s{n}" for n in range(300)]))[table.brief("s299")] == 1  # type: ignore[index]


def test_a_rows_details_are_its_moments_and_counts_and_anything_else_is_none() -> None:
    later = T0 + timedelta(seconds=1)
    values = {"fetched_at": T0, "checked_at": later, "checks": 3, "attempts": 2, "x": 1}
    assert Details.of(values) == Details(T0, later, 3, 2)
    assert Details.of({}) == Details(None, None, None, 0)
    odd = {"fetched_at": "T0", "checked_at": 5, "checks": "3", "attempts": None}
    assert Details.of(odd) == Details(None, None, None, 0)


def test_a_rows_own_counts_are_its_checks_or_attempts_and_its_latest_moment() -> None:
    later = T0 + timedelta(seconds=1)
    assert own(Details(T0, None, None, 2)) == (2, T0)
    assert own(Details(T0, later, 5, 2)) == (5, later)
    assert own(Details(later, T0, 0, 3)) == (0, later)
    assert own(Details(None, None, None, 4)) == (4, None)


def test_the_spots_come_in_first_seen_order_a_few_at_a_time() -> None:
    spill = Spilled()
    table = KeptTable(read=spill)
    merged = Kept(Status.SUCCEEDED, None, T0, T0, 4, 1, 4)
    table.put("a", Kept(Status.SUCCEEDED, None, T0, T0, 1, 1, 7), plain=True)
    table.put("b", merged)
    table.put("c", Kept(Status.EXPIRED, None, T0, T0, 1, 1, 9), plain=True)
    assert list(table.spots(2)) == [[(7, None), (4, merged)], [(9, None)]]
    assert spill.read == []


def test_the_finished_places_of_the_plan_are_read_off_the_flags() -> None:
    planned = [str(uuid.UUID(int=n + 1, version=4)) for n in range(5)]
    table = KeptTable(SessionIds.of(planned))
    for n in (0, 2, 3):
        table.put(planned[n], kept(n))
    table.finish(planned[3])
    table.finish(planned[0])
    assert table.finished_rows().tolist() == [True, False, False, True, False]  # type: ignore[union-attr]
    assert KeptTable().finished_rows() is None


def test_the_plans_briefs_are_counted_a_chunk_at_a_time_as_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ledger, "_COUNTED", 4)
    planned = [str(uuid.UUID(int=n + 1, version=4)) for n in range(23)]
    index = SessionIds.of(planned)
    table = KeptTable(index)
    answers = [(Status.SUCCEEDED, None), (None, "ThrottlingException"), (Status.FAILED, None)]
    for n, sid in enumerate(planned[:20]):
        table.put(sid, kept(n, *answers[n % 3]))
    by_columns = dict(table.briefs(index))
    assert {(b.status, b.error_code): n for b, n in by_columns.items()} == {
        (Status.SUCCEEDED, None): 7,
        (None, "ThrottlingException"): 7,
        (Status.FAILED, None): 6,
    }
    one_by_one = dict(table.briefs(planned))  # repeats: the last wins
    assert set(one_by_one) == set(by_columns)
