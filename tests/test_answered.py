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
        ledger.answered(at, False)
    ledger.advance(0.105)  # the horizon stops at the first success still in flight
    assert ledger.bracket() is None
    for at in times:
        if at not in (0.0, 0.05, 0.1):
            ledger.answered(at, True)
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
    ledger.answered(0.0, False)
    ledger.answered(0.1, False)
    for at in times[1:-1]:
        if at != 0.05:  # this one is never answered
            ledger.answered(at, True)
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
        ledger.answered(at, not throttled)
    ledger.advance(2.5)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.middle == pytest.approx(80)  # the last half second's, not a mix


def test_an_answer_to_a_release_it_never_saw_is_ignored() -> None:
    ledger = Ledger()
    released(ledger, [0.0])
    assert ledger.answered(5.0, False) is None
    assert ledger.answered(0.0, True) == 1000.0
    assert ledger.answered(0.0, True) is None  # answered once already


def test_the_first_success_sets_the_answer_time_so_nothing_is_given_up_early() -> None:
    # The mean answer time once started at zero and crept up 5% per answer: for the first
    # few dozen answers every request still in flight was given up on as unknown, and a
    # 3 x Q start read a quota of 1,000/s as 150/s.
    ledger = Ledger()
    times = [i * 0.005 for i in range(6)]
    released(ledger, times)
    ledger.answered(0.0, False)
    ledger.answered(0.025, False)
    ledger.answered(0.005, True)
    ledger.took(0.145)
    ledger.advance(0.2)  # the rest are 0.2 s in flight: not yet given up on
    for at in times[2:5]:
        ledger.answered(at, True)
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


def test_a_release_unanswered_for_five_seconds_is_given_up_on_by_default() -> None:
    ledger = Ledger()
    released(ledger, [0.0])
    ledger.advance(4.99)
    assert ledger.unread == 1
    ledger.advance(5.0)
    assert ledger.unread == 0


def test_once_answers_take_a_tenth_of_a_second_three_of_that_is_given_up_on() -> None:
    ledger = Ledger()
    ledger.took(0.1)
    assert ledger.latency == pytest.approx(0.1)  # the first answer sets it outright
    released(ledger, [0.0])
    ledger.advance(0.29)
    assert ledger.unread == 1
    ledger.advance(0.31)
    assert ledger.unread == 0


def test_the_answer_time_moves_a_twentieth_of_the_way_to_each_new_answer() -> None:
    ledger = Ledger()
    ledger.took(0.1)
    ledger.took(0.3)
    assert ledger.latency == pytest.approx(0.11)
    ledger.took(-1.0)  # a clock that stepped back counts as an instant answer
    assert ledger.latency == pytest.approx(0.11 - 0.05 * 0.11)


def test_a_release_is_given_up_on_while_releasing_only_past_stale_seconds() -> None:
    ledger = Ledger()
    released(ledger, [0.0, 5.0])
    assert ledger.unread == 2  # five seconds exactly: not yet
    released(ledger, [5.01])
    assert ledger.unread == 2  # the one at 0 is let go of


def test_releasing_late_in_a_run_does_not_read_throttles_before_their_time() -> None:
    ledger = Ledger()
    released(ledger, [10.0])
    ledger.answered(10.0, False)
    released(ledger, [10.01])
    assert ledger.advance(10.02)  # this advance passes the throttle, not the release


def test_two_releases_at_the_same_instant_are_answered_one_each() -> None:
    ledger = Ledger()
    released(ledger, [0.0, 0.001, 0.002, 0.002])
    assert ledger.answered(0.002, True) == 1000.0
    assert ledger.answered(0.002, False) == 1000.0
    assert ledger.answered(0.002, True) is None


def test_advancing_passes_nothing_and_no_throttle_is_news() -> None:
    ledger = Ledger()
    released(ledger, [0.0, 0.01])
    assert not ledger.advance(0.02)  # nothing answered yet
    ledger.answered(0.0, True)
    ledger.answered(0.01, True)
    assert not ledger.advance(0.03)  # successes only


def test_a_request_in_flight_long_keeps_the_throttles_before_it_readable() -> None:
    ledger = Ledger()
    times = [i / 100 for i in range(11)]
    released(ledger, [*times, 0.2])
    ledger.answered(0.0, False)
    ledger.answered(0.1, False)
    for at in times[1:-1]:
        ledger.answered(at, True)
    ledger.advance(3.0)  # the release at 0.2 is still out (under five seconds)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.between == 9


def test_a_reading_at_a_low_rate_late_in_a_run_spans_by_time_not_rate() -> None:
    ledger = Ledger()
    times = [20 + i / 100 for i in range(11)]
    released(ledger, times, rate=1.0)
    for at in times:
        ledger.answered(at, at not in (times[0], times[-1]))
    ledger.advance(20.2)
    reading = ledger.bracket()
    assert reading is not None
    assert (reading.between, reading.rate) == (9, 1.0)


def test_given_up_releases_count_only_between_the_throttles_read() -> None:
    # Throttles at 50.0, 50.6 and 50.9: the reading spans the last two (half a second).
    # Of the two releases given up on, the one before 50.6 is no part of it.
    ledger = Ledger()
    ledger.took(0.1)  # given up on after 0.3 s
    times = [50 + i * 0.02 for i in range(46)]
    released(ledger, times)
    for i, at in enumerate(times):
        if i not in (1, 40):  # never answered
            ledger.answered(at, i not in (0, 30, 45))
    ledger.advance(51.25)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.between == 13
    assert reading.span == pytest.approx(0.3)


def test_releases_are_counted_across_advances() -> None:
    ledger = Ledger()
    times = [i / 100 for i in range(11)]
    released(ledger, times)
    ledger.answered(0.0, False)
    ledger.advance(0.01)
    for at in times[1:5]:
        ledger.answered(at, True)
    ledger.advance(0.1)
    for at in times[5:]:
        ledger.answered(at, at != 0.1)
    ledger.advance(0.2)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.between == 9


def test_the_narrowest_reading_is_four_successes_over_20_ms() -> None:
    ledger = Ledger()
    times = [0.0, 0.004, 0.008, 0.012, 0.016, 0.02]
    released(ledger, times)
    for at in times:
        ledger.answered(at, at not in (0.0, 0.02))
    ledger.advance(0.1)
    reading = ledger.bracket()
    assert reading is not None
    assert (reading.between, reading.span) == (4, 0.02)


def test_fewer_than_four_successes_or_20_ms_make_no_reading() -> None:
    for times in ([0.0, 0.03, 0.06, 0.09, 0.1], [0.0, 0.002, 0.004, 0.006, 0.008, 0.01]):
        ledger = Ledger()
        released(ledger, times)
        for at in times:
            ledger.answered(at, at not in (times[0], times[-1]))
        ledger.advance(0.2)
        assert ledger.bracket() is None  # 3 in 100 ms, then 4 in 10 ms


def throttled_every(ledger: Ledger, times: list[float], every: int, rate: float) -> None:
    """Releases at ``times`` (at ``rate``), every ``every``-th one throttled, all answered."""
    released(ledger, times, rate)
    for i, at in enumerate(times):
        ledger.answered(at, i % every != 0)
    ledger.advance(times[-1] + 1.0)


def test_under_16_per_second_a_reading_reaches_back_to_the_longest_span_sent_above_it() -> None:
    # At 6/s half a second holds three successes: no reading ever formed, and at a quota
    # of 5 behind a bucket of 5 a lone throttle (2% off the rate) was all the limiter had.
    ledger = Ledger()
    throttled_every(ledger, [i / 6 for i in range(25)], 6, rate=6.0)  # a throttle a second
    reading = ledger.bracket()
    assert reading is not None
    assert (reading.between, reading.span, reading.long) == (20, 4.0, True)
    assert reading.middle == pytest.approx(5.0)


def test_a_long_reading_stops_where_the_rate_went_under_its_top() -> None:
    # Sent under the quota, a bucket refills and may overflow: the successes then count
    # less than it refilled, and the reading comes out low. Sent at or above the span's
    # top ((k + 1) / span) all along, it cannot have. The first second (up to its
    # throttle) at 5.2/s: 20.8 in 4 s, under the 4 s span's 21, so that span is out; at
    # 5.25/s (21 in 4 s) it is in.
    times = [i / 6 for i in range(25)]
    for first, between, span in ((5.2, 15, 3.0), (5.25, 20, 4.0)):
        ledger = Ledger()
        released(ledger, times[:7], rate=first)
        released(ledger, times[7:], rate=6.0)
        for i, at in enumerate(times):
            ledger.answered(at, i % 6 != 0)
        ledger.advance(5.0)
        reading = ledger.bracket()
        assert reading is not None
        assert reading.between == between
        assert reading.span == pytest.approx(span)


def test_a_long_reading_needs_eight_successes() -> None:
    times = [i / 6 for i in range(10)]  # throttles at 0 and 1.5 s: 8 successes between
    ledger = Ledger()
    throttled_every(ledger, times, 9, rate=6.0)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.between == 8
    assert reading.span == pytest.approx(1.5)
    ledger = Ledger()
    throttled_every(ledger, times[:9], 8, rate=6.0)  # 0 and 1.33 s: 7 between
    assert ledger.bracket() is None


def test_at_16_per_second_or_more_no_reading_reaches_past_half_a_second() -> None:
    # There half a second holds 8 successes: a longer span is not needed, and over longer
    # a stretch under the quota could let a small bucket overflow.
    times = [i / 16 for i in range(33)]  # a throttle a second, 15 successes between
    ledger = Ledger()
    throttled_every(ledger, times, 16, rate=16.0)
    assert ledger.bracket() is None
    ledger = Ledger()
    throttled_every(ledger, times, 16, rate=15.9)
    reading = ledger.bracket()
    assert reading is not None
    assert (reading.between, reading.span) == (30, 2.0)


def test_a_long_reading_reaches_back_ten_seconds_at_most() -> None:
    for throttles, expected in (((0, 14, 24), (9, 10.0)), ((0, 13, 24), None)):
        ledger = Ledger()
        for i in range(25):  # 1/s, each answered before the next release
            ledger.released(float(i), 1.0)
            ledger.answered(float(i), i not in throttles)
        ledger.advance(25.0)
        reading = ledger.bracket()  # not the 24 s span from 0, nor 11 s from 13
        assert (reading and (reading.between, reading.span)) == expected


def test_a_reading_within_half_a_second_is_not_long() -> None:
    ledger = Ledger()
    throttled_every(ledger, [i / 100 for i in range(51)], 10, rate=100.0)
    reading = ledger.bracket()
    assert reading is not None
    assert not reading.long
    assert reading.span == pytest.approx(0.5)


def test_whether_a_reading_may_be_long_goes_by_the_last_throttles_rate() -> None:
    # Climbing from 6/s to 20/s: at 20/s half a second holds 8 successes, so the reading
    # is the last half second's or none, whatever the rate was before.
    times = [i / 6 for i in range(19)]  # throttles at 0, 1, 2 and 3 s
    found = []
    for before, last in ((6.0, 20.0), (20.0, 6.0)):
        ledger = Ledger()
        released(ledger, times[:-1], rate=before)
        released(ledger, times[-1:], rate=last)
        for i, at in enumerate(times):
            ledger.answered(at, i % 6 != 0)
        ledger.advance(4.0)
        found.append(ledger.bracket())
    assert found[0] is None
    assert found[1] is not None


def test_a_long_reading_goes_by_the_gaps_between_releases_not_only_their_rate() -> None:
    # Callers that leave the limiter idle (no work, the gate full) release less often
    # than its rate says: in a gap the bucket refills and may overflow, so a span over
    # one reads the quota low (4.1/s against 5 in a review's run).
    busy = [i / 6 for i in range(26)]
    idle = [*busy[:13], *(2 + at for at in busy[13:])]  # 2 s with nothing to release
    late = [*busy[:15], *(0.18 + at for at in busy[15:])]  # one gap of 0.35 s: 2.9/s
    found = []
    for times in (busy, idle, late):
        ledger = Ledger()
        for i, at in enumerate(times):  # each answered before the next release
            ledger.released(at, 6.0)
            ledger.answered(at, i % 6 != 0)
        ledger.advance(times[-1] + 1)
        found.append(ledger.bracket())
    assert found[0] is not None
    assert found[0].middle == pytest.approx(5.0)
    assert found[1] is None  # the 1 s after the gap holds 5 successes, too few
    assert found[2] is None


def test_between_8_and_16_per_second_a_long_reading_is_preferred_to_a_short_one() -> None:
    # At 12/s a throttle every 5 releases puts two within half a second, 4 successes
    # apart: (4 +- 1) / span is +-25%, where the span back to the first holds 36.
    ledger = Ledger()
    for i in range(46):
        ledger.released(i / 12, 12.0)
        ledger.answered(i / 12, i % 5 != 0)
    ledger.advance(5.0)
    reading = ledger.bracket()
    assert reading is not None
    assert reading.long
    assert reading.between == 36
