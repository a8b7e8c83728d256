"""The answer ledger: a kept answer is never replaced by a less informative one."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from batch.model import Status
from batch.store.ledger import Ledger, Rank, keep, local_steps_due, pending, rank, settled
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
