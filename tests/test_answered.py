"""The limiter's ledger: the quota is read between throttles only once every answer is in."""

from __future__ import annotations

import pytest

from batch.pacing.answered import Ledger


def released(ledger: Ledger, times: list[float], rate: float = 1000.0) -> None:
    for at in times:
        ledger.released(at, rate)


def test_a_reading_waits_for_the_successes_between_its_throttles() -> None:
    # Throttles come back in a round trip, successes after their lookup: with only the
    # throttles in, "successes so far" between them would be none, a quota of zero.
    ledger = Ledger()
    times = [i / 1000 for i in range(101)]  # a release every ms
    released(ledger, times)
    for at in (0.0, 0.05, 0.1):  # three throttles, answered first
        ledger.answered(at, False, now=at + 0.005)
    ledger.advance(0.105)  # the horizon stops at the first success still in flight
    assert ledger.bracket() is None
    for at in times:
        if at not in (0.0, 0.05, 0.1):
            ledger.answered(at, True, now=at + 0.15)
    assert ledger.advance(0.25)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.between == 98
    assert reading.span == pytest.approx(0.1)
    assert reading.middle == pytest.approx(980)


def test_a_release_never_answered_counts_as_unknown_after_stale_seconds() -> None:
    ledger = Ledger(stale=1.0)
    times = [i / 100 for i in range(11)]
    released(ledger, times)
    ledger.answered(0.0, False, now=0.01)
    ledger.answered(0.1, False, now=0.11)
    for at in times[1:-1]:
        if at != 0.05:  # this one is never answered
            ledger.answered(at, True, now=at + 0.01)
    ledger.advance(0.5)
    assert ledger.bracket() is None  # waiting for it
    assert ledger.advance(1.06)  # given up on: neither success nor throttle
    reading = ledger.bracket()
    assert reading is not None
    assert reading.between == 8


def test_only_the_last_half_second_of_throttles_is_read() -> None:
    ledger = Ledger()
    times = [i / 100 for i in range(201)]  # 100/s for two seconds
    released(ledger, times)
    for i, at in enumerate(times):
        # one in two throttled for the first second, one in five after
        throttled = i % 2 == 0 if at < 1.0 else i % 5 == 0
        ledger.answered(at, not throttled, now=2.5)
    ledger.advance(2.5)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.middle == pytest.approx(80)  # the last half second's, not a mix


def test_an_answer_to_a_release_it_never_saw_is_ignored() -> None:
    ledger = Ledger()
    released(ledger, [0.0])
    assert ledger.answered(5.0, False, now=5.1) is None
    assert ledger.answered(0.0, True, now=0.1) == 1000.0
    assert ledger.answered(0.0, True, now=0.1) is None  # answered once already


def test_the_first_success_sets_the_answer_time_so_nothing_is_given_up_early() -> None:
    # The mean answer time once started at zero and crept up 5% per answer: for the first
    # few dozen answers every request still in flight was given up on as unknown, and a
    # 3 x Q start read a quota of 1,000/s as 150/s.
    ledger = Ledger()
    times = [i * 0.005 for i in range(6)]
    released(ledger, times)
    ledger.answered(0.0, False, now=0.01)
    ledger.answered(0.025, False, now=0.035)
    ledger.answered(0.005, True, now=0.15)
    ledger.took(0.145)
    ledger.advance(0.2)  # the rest are 0.2 s in flight: not yet given up on
    for at in times[2:5]:
        ledger.answered(at, True, now=0.3)
    ledger.advance(0.3)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.between == 4


def test_releases_never_answered_are_let_go_of_after_stale_seconds() -> None:
    # A caller that reports only throttles and successes (errors go unreported) must not
    # make the ledger grow for ever.
    ledger = Ledger(stale=1.0)
    released(ledger, [i / 100 for i in range(1000)])  # ten seconds, not one answer
    assert ledger.unread <= 102
