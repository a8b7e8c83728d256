"""The plan's IDs in columns (:class:`batch.store.ids.SessionIds`) and the kept answers
indexed by their place (:class:`batch.store.ledger.KeptTable` with an index): the same
IDs, order and counts as before, a few bytes a session instead of a ``str`` and a dict
slot (issue 24: a run of a million sessions in flat memory)."""

from __future__ import annotations

import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batch.model import Status
from batch.store.ids import SessionIds, uuid_keys
from batch.store.inputs import read_plan
from batch.store.ledger import Details, Kept, KeptTable

A = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
B = "11111111-2222-4333-8444-555555555555"
C = "00000000-0000-4000-8000-000000000000"  # a key ending in zero bytes
T0 = datetime(2026, 12, 5, 1, 0, 0, 654321, tzinfo=UTC)


def ids_of(n: int, seed: int = 0) -> list[str]:
    return [str(uuid.UUID(int=(seed << 64) + i * 7919 + 1, version=4)) for i in range(n)]


def test_ids_come_back_in_input_order_and_each_is_found_at_its_place() -> None:
    ids = SessionIds.of([B, C, A])
    assert list(ids) == [B, C, A]
    assert ids == (B, C, A)
    assert (ids[0], ids[-1], ids[1:]) == (B, A, [C, A])
    assert [ids.row(sid) for sid in (A, B, C)] == [2, 0, 1]
    assert ids.row(A.upper()) is None  # only the canonical (normalised) form is one
    assert ids.row("not-an-id") is None
    assert ids.row(str(uuid.uuid4())) is None
    assert C in ids
    assert "x" not in ids
    with pytest.raises(IndexError):
        ids[3]


def test_ids_sharing_their_first_half_are_each_found_and_a_near_miss_is_not() -> None:
    same = [f"00000000-0000-4000-8000-{n:012x}" for n in (5, 1, 9, 3)]
    ids = SessionIds.of(same)
    assert [ids.row(sid) for sid in same] == [0, 1, 2, 3]
    assert ids.row("00000000-0000-4000-8000-000000000002") is None
    assert ids.row("00000000-0000-4000-8000-00000000000a") is None
    assert list(ids) == same


def test_many_ids_sharing_their_first_half_among_others_are_each_found_at_their_place() -> None:
    # made-up IDs (a counter in the last group) share their first half: each is found by
    # a binary search on both halves, and a key between two of them, or past the last,
    # is not one of them
    made = [f"00000000-0000-4000-8000-{n:012x}" for n in range(2, 6000, 2)]
    others = [
        str(uuid.UUID(int=n * 0x9E3779B97F4A7C15_F39CC0605CEDC834 % 2**128)) for n in range(500)
    ]
    everything = others[:250] + made[::-1] + others[250:]
    ids = SessionIds.of(everything)
    assert [ids.row(sid) for sid in everything] == list(range(len(everything)))
    for missing in (1, 3, 2999, 6000, 6001, 0xFFFFFFFFFFFF):
        assert ids.row(f"00000000-0000-4000-8000-{missing:012x}") is None


def test_repeated_keys_keep_their_first_place_and_order() -> None:
    keys = uuid_keys(pa.array([A, B, A, C, B, C, A]))
    ids, firsts = SessionIds.unique(keys)
    assert list(ids) == [A, B, C]
    assert firsts.tolist() == [0, 1, 3]


def test_a_plans_ids_and_counts_are_what_they_were_with_odd_whitespace_and_case(
    tmp_path: Path,
) -> None:
    # A no-break space and a file separator are whitespace to str.strip, not to ASCII
    # trimming: those cells take the Python path and still count as the same IDs.
    cells = [f"\u00a0{B}", A, f" {A.upper()} ", "nope", "", f"\x1c{B}", C, "nope", f"{A}\t"]
    source = tmp_path / "in.csv"
    source.write_text("session_id,note\n" + "".join(f"{c},n\n" for c in cells))
    plan = read_plan(source)
    assert plan.valid == (B, A, C)
    assert plan.counts() == {"rows": 9, "valid": 3, "duplicates": 4, "invalid": 1, "blank": 1}


def test_kept_columns_are_the_first_rows_and_a_differing_repeat_is_a_conflict(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.csv"
    rows = [(A, "1"), (B, ""), (A, "1"), (B, "2"), (C, "3"), (A, "9")]
    source.write_text("session_id,v\n" + "".join(f"{s},{v}\n" for s, v in rows))
    plan = read_plan(source, keep=["v"])
    assert dict(plan.kept) == {A: ("1",), B: ("",), C: ("3",)}
    assert plan.conflicts == 2  # B's "2" and A's "9"


def _retained(build: object, n: int) -> int:
    ids = ids_of(n)
    tracemalloc.start()
    try:
        held = build(ids)  # type: ignore[operator]  # a callable of the test's
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(held) == n
    return size


def _per_session(build: object) -> float:
    _retained(build, 200)  # imports, compiled patterns, pyarrow's kernels: made once
    return (_retained(build, 20_000) - _retained(build, 2_000)) / 18_000


def test_a_plan_holds_an_id_in_about_20_bytes_not_a_str(tmp_path: Path) -> None:
    def plan_of(ids: list[str]) -> SessionIds:
        source = tmp_path / f"in{len(ids)}.csv"
        source.write_text("session_id\n" + "\n".join(ids) + "\n")
        return read_plan(source).valid

    per_session = _per_session(plan_of)
    # 16 bytes of key and an int32 sort order, measured 20 (24 with the sorted place of
    # each row beside it); a str in a tuple took ~93
    assert per_session < 23, f"{per_session:.0f} bytes a session"


def test_settled_answers_of_the_plans_sessions_cost_a_few_array_cells_only() -> None:
    def table_of(ids: list[str]) -> KeptTable:
        table = KeptTable(SessionIds.of(ids), read=lambda where: Details(T0, T0, 1, 1))
        answer = Kept(Status.SUCCEEDED, None, T0, T0, 1, 1, 0)
        for sid in ids:
            table.put(sid, answer, plain=True)
        return table

    per_session = _per_session(table_of)
    # the plan's 20 and the table's 10 bytes, measured 31 (the moments and counts read
    # back from the spill); with them held it took 60, a dict slot and a str ~160
    assert per_session < 35, f"{per_session:.0f} bytes a session"


def test_sessions_outside_the_plan_are_held_beside_it_in_first_seen_order() -> None:
    planned = ids_of(3)
    table = KeptTable(SessionIds.of(planned))
    outside = ["not-an-id", str(uuid.UUID(int=99, version=4))]
    order = [planned[2], outside[0], planned[0], outside[1]]
    for n, sid in enumerate(order):
        table.put(sid, Kept(Status.IN_PROGRESS, None, T0, None, n, 0, n))
    table.put(planned[2], Kept(Status.SUCCEEDED, None, T0, T0, 5, 1, 9))
    assert table.held() == order
    assert list(table.held()[1:3]) == order[1:3]
    assert table.get(planned[2]) == Kept(Status.SUCCEEDED, None, T0, T0, 5, 1, 9)
    assert table.get(outside[1]) == Kept(Status.IN_PROGRESS, None, T0, None, 3, 0, 3)
    assert table.get(planned[1]) is None
    assert table.brief(planned[1]) is None
    assert table.finish(outside[0])
    assert not table.finished(planned[0])
    assert len(table) == 4


def test_held_ids_many_past_the_first_growth_come_back_in_order() -> None:
    table = KeptTable(SessionIds.of(ids_of(10)))
    outside = [f"cell-{n}" for n in range(200)]  # past the arrays' first size: they grow
    for n, sid in enumerate(outside):
        table.put(sid, Kept(None, "InvalidSessionId", None, T0, 0, 0, n))
    assert list(table.held()) == outside
    assert table.get("cell-150") == Kept(None, "InvalidSessionId", None, T0, 0, 0, 150)


def test_the_briefs_of_the_plans_sessions_are_counted_off_the_columns_as_one_by_one() -> None:
    planned = ids_of(50)
    index = SessionIds.of(planned)
    table = KeptTable(index)
    answers = [(Status.SUCCEEDED, None), (Status.IN_PROGRESS, None), (None, "NotAttempted")]
    for n, sid in enumerate(planned[:40]):  # ten of the plan not held
        status, error = answers[n % 3]
        table.put(sid, Kept(status, error, T0, T0, 1, 1, n))
    table.put("outside", Kept(Status.FAILED, None, T0, T0, 1, 1, 99))  # not in the plan
    by_columns = dict(table.briefs(index))
    one_by_one: dict[object, int] = {}
    for brief, n in table.briefs(list(planned)):
        one_by_one[brief] = one_by_one.get(brief, 0) + n
    assert by_columns == one_by_one
    assert sorted(by_columns.values()) == [13, 13, 14]
    assert {b.error_code for b in by_columns} == {None, "NotAttempted"}


def test_ids_paged_out_are_found_and_taken_as_before_and_leave_no_file(tmp_path: Path) -> None:
    planned = ids_of(3_000)
    ids, same = SessionIds.of(planned), SessionIds.of(planned)
    ids.page_out(tmp_path / ".ids", mode=0o600)
    assert list(tmp_path.iterdir()) == []  # mapped, and removed at once
    assert ids == same
    assert list(ids) == planned
    assert [ids.row(sid) for sid in planned[::97]] == list(range(0, 3_000, 97))
    assert ids.row(str(uuid.UUID(int=5, version=4))) is None
    assert ids.take(np.array([2_999, 0], np.int32)) == [planned[2_999], planned[0]]


def test_paging_out_the_ids_gives_their_20_bytes_a_session_back(tmp_path: Path) -> None:
    planned = ids_of(20_000)
    tracemalloc.start()
    try:
        ids = SessionIds.of(planned)
        held = tracemalloc.get_traced_memory()[0]
        ids.page_out(tmp_path / ".ids", mode=0o600)
        freed = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert freed / 20_000 > 19, f"{freed / 20_000:.1f} bytes a session given back"
    assert ids[19_999] == planned[19_999]
