"""The service-timing model (issue 21): its draws, its spec, and the emulator answering by it."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import pytest

from batch.emulator import EmulatorSettings, EmulatorThread
from batch.emulator.timing import Timing, parse_timing
from tests.helpers import run_cli
from tests.test_emulator_time import answer, rekognition


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311  # repeatable draws, not a secret


def test_a_success_takes_the_latency_and_a_throttle_only_the_round_trip() -> None:
    leg = Timing(latency=0.15, round_trip=0.015).leg(seeded(1))
    assert leg.way_in == pytest.approx(0.0075)
    assert leg.way_in + leg.back == pytest.approx(0.15)
    assert leg.way_in + leg.back_throttled == pytest.approx(0.015)
    slow = Timing(latency=0.15, round_trip=0.015, throttle="success").leg(seeded(1))
    assert slow.back_throttled == slow.back


def test_the_old_fixed_latency_is_all_network_and_throttles_are_as_slow() -> None:
    leg = Timing(latency=0.05).leg(seeded(1))
    assert leg.way_in == pytest.approx(0.025)
    assert leg.back == leg.back_throttled == pytest.approx(0.025)


def test_uniform_stays_within_its_share_and_lognormal_has_its_median_and_a_tail() -> None:
    rng = seeded(21)
    uniform = Timing(latency=0.1, dist="uniform", jitter=0.4)
    draws = [uniform.draw(0.1, rng) for _ in range(2000)]
    assert min(draws) >= 0.06
    assert max(draws) <= 0.14
    lognormal = Timing(latency=0.1, dist="lognormal", jitter=0.5)
    draws = [lognormal.draw(0.1, rng) for _ in range(2001)]
    assert statistics.median(draws) == pytest.approx(0.1, rel=0.05)
    assert max(draws) > 0.3  # beyond three times the median: the long tail


def test_requests_overtake_each_other_when_the_timing_jitters() -> None:
    rng = seeded(3)
    timing = Timing(latency=0.05, dist="lognormal", jitter=0.5)
    answers = [i * 0.001 + timing.leg(rng).way_in for i in range(100)]  # one sent per ms
    assert answers != sorted(answers)


def test_the_spec_gives_every_field_and_names_a_bad_one() -> None:
    timing = parse_timing("latency=0.05, round-trip=0.005, dist=lognormal, jitter=0.5")
    assert timing == Timing(latency=0.05, round_trip=0.005, dist="lognormal", jitter=0.5)
    with pytest.raises(ValueError, match="latency"):
        parse_timing("latency=fast")
    with pytest.raises(ValueError, match="key=value"):
        parse_timing("speed=1")
    with pytest.raises(ValueError, match="round_trip"):
        Timing(latency=0.01, round_trip=0.02)
    with pytest.raises(ValueError, match="dist"):
        parse_timing("dist=gamma")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--throttle-latency", "soon"], "--throttle-latency"),
        (["--timing", "latency=0.05,speed=2"], "key=value"),
        (["--timing", "latency=0.05", "--latency-dist", "uniform"], "--timing"),
        (["--latency", "0.01", "--throttle-latency", "0.02"], "round_trip"),
    ],
)
def test_bad_timing_flags_are_a_one_line_error_and_exit_2(args: list[str], message: str) -> None:
    ran = run_cli("emulator", *args)
    assert ran.code == 2
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1


async def test_over_http_a_throttle_comes_back_before_an_earlier_success() -> None:
    # The first request is looked up for a second; the second, sent with it, is throttled
    # at the door (scripted) and answered in a round trip of 20 ms, long before the first.
    timing = Timing(latency=1.0, round_trip=0.02)
    with EmulatorThread(EmulatorSettings(sessions=10, seed=4, timing=timing)) as emu:
        ok_id, throttled_id = emu.population.ids()[:2]
        emu.script(throttled_id, ["throttle"])
        done: list[tuple[str, float]] = []
        async with rekognition(emu.url) as first, rekognition(emu.url) as second:

            async def ask(rek: Any, session_id: str) -> None:
                started = time.monotonic()
                got = await answer(rek, session_id)
                done.append((got if isinstance(got, str) else "ok", time.monotonic() - started))

            await asyncio.gather(ask(first, ok_id), ask(second, throttled_id))
    assert [outcome for outcome, _ in done] == ["ThrottlingException", "ok"]
    assert done[1][1] >= 1.0  # the whole latency: way in, lookup, way back
