"""The run's kept answers in columns (:class:`batch.store.ledger.KeptTable`): what goes in
comes out, in first-seen order, and a session costs a few typed array cells, not objects."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

from batch.model import Status
from batch.store.ledger import Kept, KeptTable, pending, unresolved

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
    assert table.brief("missing") is None


def _bytes_for(sessions: int) -> int:
    ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(sessions)]
    answers = [kept(n) for n in range(sessions)]  # made before measuring: the run's own
    tracemalloc.start()
    try:
        table = KeptTable()
        for sid, answer in zip(ids, answers, strict=True):
            table.put(sid, answer)
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(table) == sessions
    return size


def test_a_session_costs_array_cells_and_a_dict_slot_not_objects() -> None:
    few, many = _bytes_for(2_000), _bytes_for(20_000)
    per_session = (many - few) / 18_000
    # a dict slot and its int (~75 bytes) and ~40 bytes of array cells; a Kept object with
    # two datetimes in a dict took ~250 (generous: the dict's growth steps are uneven)
    assert per_session < 180, f"{per_session:.0f} bytes a session"
