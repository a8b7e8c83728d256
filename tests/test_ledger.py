"""The answer ledger: a kept answer is never replaced by a less informative one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch.model import Status
from batch.store.ledger import (
    Choice,
    Kept,
    Ledger,
    Rank,
    choose,
    fold,
    gone_while_pending,
    keep,
    local_steps_due,
    marked_gone,
    pending,
    rank,
    settled,
    unresolved,
)
from batch.store.row import Row

SID = "11111111-2222-4333-8444-555555555555"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def row(
    status: str | None = None,
    error_code: str | None = None,
    *,
    at: int = 0,
    attempts: int = 1,
    confidence: float | None = None,
) -> Row:
    return Row(
        SID,
        status=Status(status) if status else None,
        confidence=confidence,
        error_code=error_code,
        attempts=attempts,
        fetched_at=T0 + timedelta(seconds=at),
    )


ANSWERS = [
    row("SUCCEEDED", confidence=97.5),
    row("FAILED", confidence=12.0),
    row("EXPIRED"),
    row("IN_PROGRESS"),
    row("CREATED"),
    row(None, "SessionNotFoundException"),
    row(None, "ThrottlingException"),
    row(None, "NotAttempted", attempts=0),
]


def test_answers_rank_result_over_expired_over_pending_over_not_found_over_errors() -> None:
    ranks = [rank(a) for a in ANSWERS]
    assert ranks == [
        Rank.RESULT,
        Rank.RESULT,
        Rank.EXPIRED,
        Rank.IN_PROGRESS,
        Rank.CREATED,
        Rank.GONE,
        Rank.NOTHING,
        Rank.NOTHING,
    ]


def test_an_expired_answer_after_a_result_keeps_the_result_and_counts_the_check() -> None:
    kept = keep(keep(None, row("SUCCEEDED", confidence=97.5)), row("EXPIRED", at=600))
    assert kept.status == "SUCCEEDED"
    assert kept.confidence == 97.5
    assert kept.fetched_at == T0
    assert kept.checked_at == T0 + timedelta(seconds=600)
    assert kept.checks == 2


def test_a_second_fetch_of_a_result_does_not_replace_the_first() -> None:
    first = keep(None, row("SUCCEEDED", confidence=97.5))
    kept = keep(first, row("SUCCEEDED", confidence=10.0, at=5))
    assert kept.confidence == 97.5


def test_a_pending_session_takes_its_newer_answer() -> None:
    kept = keep(keep(None, row("CREATED")), row("IN_PROGRESS", at=10))
    assert kept.status == "IN_PROGRESS"
    assert keep(kept, row("IN_PROGRESS", at=20)).fetched_at == T0 + timedelta(seconds=20)


def test_the_same_observation_merged_twice_is_counted_once() -> None:
    once = keep(None, row("SUCCEEDED", confidence=90.0, attempts=3))
    twice = keep(once, row("SUCCEEDED", confidence=90.0, attempts=3))
    assert twice.checks == 3


def test_a_local_step_redone_on_the_same_answer_replaces_the_unverified_row() -> None:
    unverified = keep(None, row("SUCCEEDED", "EvidenceUnverified", confidence=90.0))
    assert local_steps_due(unverified)
    verified = keep(unverified, row("SUCCEEDED", confidence=90.0))
    assert verified.error_code is None
    assert not local_steps_due(verified)


def test_settled_and_pending_say_who_is_asked_again() -> None:
    assert [settled(a) for a in ANSWERS] == [True, True, True, False, False, True, False, False]
    assert [pending(a) for a in ANSWERS] == [False, False, False, True, True, False, False, False]


@given(st.lists(st.sampled_from(range(len(ANSWERS))), min_size=1, max_size=12))
def test_in_any_order_of_answers_the_kept_rank_never_goes_down(order: list[int]) -> None:
    ledger = Ledger()
    best = Rank.NOTHING
    for step, index in enumerate(order):
        kept = ledger.add(replace(ANSWERS[index], fetched_at=T0 + timedelta(seconds=step)))
        assert rank(kept) >= best
        best = max(best, rank(ANSWERS[index]))
        assert rank(kept) == best
    final = ledger.get(SID)
    assert final is not None
    assert final.checks == sum(ANSWERS[i].attempts for i in order)


# --- the rule's parts, one by one (mutation tests: docs/BENCHMARKS.md) --------------------


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def call(
    status: str | None = None,
    error_code: str | None = None,
    *,
    fetched: int | None = 0,
    checked: int | None = None,
    checks: int | None = None,
    attempts: int = 1,
) -> Row:
    return Row(
        SID,
        status=Status(status) if status else None,
        error_code=error_code,
        attempts=attempts,
        fetched_at=None if fetched is None else at(fetched),
        checked_at=None if checked is None else at(checked),
        checks=checks,
    )


@pytest.mark.parametrize(
    ("old", "new", "latest"),
    [
        (call("CREATED", fetched=1, checked=50), call("IN_PROGRESS", fetched=2, checked=3), 50),
        (call("CREATED", fetched=60, checked=5), call("IN_PROGRESS", fetched=2, checked=3), 60),
        (call("CREATED", fetched=1, checked=5), call("IN_PROGRESS", fetched=2, checked=70), 70),
        (call("CREATED", fetched=1, checked=5), call("IN_PROGRESS", fetched=80, checked=3), 80),
    ],
)
def test_two_calls_sum_their_checks_and_were_last_checked_at_the_latest_of_their_moments(
    old: Row, new: Row, latest: int
) -> None:
    old, new = replace(old, checks=2), replace(new, checks=3)
    assert choose(old, new) == Choice(new_wins=True, checks=5, checked_at=at(latest), same=False)


def test_one_observation_seen_twice_counts_its_checks_once_and_keeps_its_own_moment() -> None:
    journaled = call("SUCCEEDED", "EvidenceUnverified", fetched=10, checked=40, checks=3)
    redone = call("SUCCEEDED", fetched=10, checked=40, checks=2)
    assert choose(journaled, redone) == Choice(True, 3, None, True)
    kept = keep(journaled, redone)
    assert (kept.error_code, kept.checks, kept.checked_at) == (None, 3, at(40))


def test_a_lower_ranked_copy_of_the_same_observation_does_not_win() -> None:
    assert not choose(call("SUCCEEDED", fetched=10), call(None, "Throttling", fetched=10)).new_wins


def test_an_equal_rank_result_never_replaces_the_kept_one_but_a_pending_answer_does() -> None:
    assert not choose(call("SUCCEEDED", fetched=1), call("FAILED", fetched=2)).new_wins
    assert choose(call("CREATED", fetched=1), call("CREATED", fetched=2)).new_wins
    assert choose(call(None, "Throttling", fetched=1), call(None, "Timeout", fetched=2)).new_wins


@pytest.mark.parametrize(
    ("first", "checks", "checked_at"),
    [
        (call("CREATED", fetched=5, checked=9, checks=4), 4, at(9)),
        (call("CREATED", fetched=9, checked=5, attempts=2), 2, at(9)),
        (call(None, "NotAttempted", fetched=None, attempts=0), 0, None),
    ],
)
def test_a_first_answer_is_kept_with_its_checks_and_its_latest_moment(
    first: Row, checks: int, checked_at: datetime | None
) -> None:
    kept = keep(None, first)
    assert (kept.checks, kept.checked_at) == (checks, checked_at)
    folded = fold(None, first, 7)
    assert (folded.checks, folded.checked_at, folded.where) == (checks, checked_at, 7)


def test_a_kept_answer_is_its_rows_rule_fields_and_its_place() -> None:
    row = call("EXPIRED", "SessionGone", fetched=3, checked=4, checks=5, attempts=2)
    assert Kept.of(row, 11) == Kept(Status.EXPIRED, "SessionGone", at(3), at(4), 5, 2, 11)
    assert Kept.of(call(fetched=None, checks=None, attempts=0), 0).checks == 0


def test_folding_a_losing_answer_keeps_the_winners_place_with_the_sums() -> None:
    kept = fold(None, call("SUCCEEDED", fetched=1, checks=1), 0)
    after = fold(kept, call("EXPIRED", fetched=9, checks=2), 1)
    assert after == Kept(Status.SUCCEEDED, None, at(1), at(9), 3, 1, 0)
    assert kept.checks == 1  # the kept answer before is not changed


def test_folding_a_winning_answer_takes_its_fields_and_its_place() -> None:
    kept = fold(None, call("CREATED", fetched=1, checks=1), 0)
    after = fold(kept, call("SUCCEEDED", fetched=9, checked=12, checks=2), 1)
    assert after == Kept(Status.SUCCEEDED, None, at(9), at(12), 3, 1, 1)


def test_folding_the_same_observation_again_takes_the_winning_copys_own_moment() -> None:
    kept = fold(None, call("SUCCEEDED", "ImageNotSaved", fetched=4, checked=6, checks=2), 0)
    after = fold(kept, call("SUCCEEDED", fetched=4, checked=99, checks=2), 1)
    assert after == Kept(Status.SUCCEEDED, None, at(4), at(99), 2, 1, 1)
    lost = fold(kept, call(None, "ThrottlingException", fetched=4, checked=99, checks=1), 2)
    assert lost == Kept(Status.SUCCEEDED, "ImageNotSaved", at(4), at(6), 2, 1, 0)


@pytest.mark.parametrize(
    ("old", "new", "gone"),
    [
        (call("IN_PROGRESS"), call(None, "SessionNotFoundException", fetched=5), True),
        (call("CREATED"), call(None, "SessionNotFoundException", fetched=5), True),
        (call("SUCCEEDED"), call(None, "SessionNotFoundException", fetched=5), False),
        (call(None, "Throttling"), call(None, "SessionNotFoundException", fetched=5), False),
        (call("IN_PROGRESS"), call(None, "ThrottlingException", fetched=5), False),
        (call("IN_PROGRESS"), call("EXPIRED", "SessionNotFoundException", fetched=5), False),
    ],
)
def test_a_session_is_gone_when_not_found_after_it_was_seen_pending(
    old: Row, new: Row, gone: bool
) -> None:
    assert gone_while_pending(old, new) is gone


def test_a_pending_session_that_vanished_keeps_its_last_row_marked_gone_as_of_the_call() -> None:
    last = replace(call("IN_PROGRESS", fetched=1, checked=2, checks=3), confidence=None)
    vanished = call(None, "SessionNotFoundException", fetched=30, checked=20, checks=4)
    marked = marked_gone(last, vanished)
    assert marked == replace(
        last,
        error_code="SessionGone",
        error_message="the session disappeared while IN_PROGRESS (SessionNotFoundException)",
        fetched_at=at(30),
        checks=4,
        checked_at=at(30),
    )
    kept = keep(last, vanished)
    assert (kept.status, kept.error_code, kept.fetched_at, kept.checks) == (
        Status.IN_PROGRESS,
        "SessionGone",
        at(30),
        7,
    )
    assert settled(kept)
    assert not pending(kept)


@pytest.mark.parametrize(
    ("fetched", "checked", "when"),
    [(None, 20, at(20)), (None, None, at(1)), (15, 25, at(15))],
)
def test_a_vanished_session_is_marked_as_of_its_call_or_else_its_last_answer(
    fetched: int | None, checked: int | None, when: datetime
) -> None:
    last = call("CREATED", fetched=1)
    marked = marked_gone(
        last, call(None, "SessionNotFoundException", fetched=fetched, checked=checked)
    )
    assert marked.fetched_at == when
    latest = [at(m) for m in (fetched, checked) if m is not None]
    assert marked.checked_at == (max(latest) if latest else None)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (call("SUCCEEDED", "EvidenceUnverified"), True),
        (call("FAILED", "ImageNotSaved"), True),
        (call(None, "EvidenceUnverified"), False),
        (call("SUCCEEDED"), False),
        (call("IN_PROGRESS"), False),
        (call(None, "ThrottlingException"), True),
        (call(None, "NotAttempted"), True),
        (call(None, "InvalidRegion"), False),
        (call(None, "SessionNotFoundException"), False),
    ],
)
def test_unresolved_means_no_answer_yet_or_a_local_step_left_on_a_result(
    answer: Row, expected: bool
) -> None:
    assert unresolved(answer) is expected


def test_the_losing_rows_own_columns_stay_with_the_winner() -> None:
    report = replace(call("CREATED", fetched=1), extras={"customer_ref": "c-1", "agrees": None})
    answer = replace(call("SUCCEEDED", fetched=2), extras={"agrees": True})
    kept = keep(report, answer)
    assert kept.status == Status.SUCCEEDED
    assert dict(kept.extras) == {"customer_ref": "c-1", "agrees": True}


def test_a_replaced_row_keeps_the_columns_only_the_row_it_replaces_has() -> None:
    ledger = Ledger([replace(call("SUCCEEDED", "EvidenceUnverified"), extras={"ref": 7})])
    ledger.replace(call("SUCCEEDED", fetched=3))
    ledger.replace(replace(call("CREATED"), session_id="other"))
    kept = ledger.get(SID)
    assert kept is not None
    assert (kept.error_code, kept.fetched_at, dict(kept.extras)) == (None, at(3), {"ref": 7})
    assert SID in ledger
    assert "nobody" not in ledger
    assert len(ledger) == 2
    assert [row.session_id for row in ledger] == [SID, "other"] == ledger.held()
    assert ledger.rows(["other"]) == [ledger.get("other")]
