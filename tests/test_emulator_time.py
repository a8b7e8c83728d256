"""The emulator where time passes: lifecycle, sessions created while it runs, quotas per
region with production load, and the Service Quotas answer.

Each test runs its own emulator on a fake clock and moves the clock instead of sleeping;
requests go through the real aioboto3 client over HTTP.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
import aiohttp
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from batch.emulator import (
    CHALLENGE_TYPES,
    QUOTA_NAME,
    EmulatorSettings,
    EmulatorThread,
    Plan,
    status_at,
)
from tests.fakes import VirtualClock

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def clock() -> VirtualClock:
    # The emulator reads it from its own thread; binary fractions stay exact.
    return VirtualClock(start=1024.0)


@pytest.fixture
def timed(clock: VirtualClock) -> Iterator[EmulatorThread]:
    settings = EmulatorSettings(sessions=300, seed=11, lifetime=180)
    with EmulatorThread(settings, clock=clock.now) as server:
        yield server


@asynccontextmanager
async def client(url: str, region: str = "us-east-1", service: str = "rekognition") -> Any:
    session = aioboto3.Session()
    async with session.client(
        service,
        endpoint_url=url,
        region_name=region,
        config=NO_RETRIES,
    ) as c:
        yield c


async def answer(rek: Any, session_id: str) -> Any:
    """The parsed answer without metadata (a dict), or the error code (a str)."""
    try:
        body = await rek.get_face_liveness_session_results(SessionId=session_id)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    body.pop("ResponseMetadata")
    return _as_sent(body)


def _as_sent(value: Any) -> Any:
    """botocore's parsed answer with image bytes base64 again, as the emulator sent them."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _as_sent(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_sent(v) for v in value]
    return value


@asynccontextmanager
async def rekognition(url: str, region: str = "us-east-1") -> AsyncIterator[Any]:
    async with client(url, region) as rek:
        yield rek


# --- the lifecycle as a pure function ------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0, "CREATED"),
        (4.9, "CREATED"),
        (5, "IN_PROGRESS"),
        (10, "SUCCEEDED"),
        (179.9, "SUCCEEDED"),
        (180, None),
    ],
)
def test_a_finished_session_is_created_started_finished_then_gone(
    age: float, expected: str | None
) -> None:
    plan = Plan(created_at=100, start_after=5, finish_after=10, outcome="SUCCEEDED")
    assert status_at(plan, 100 + age, lifetime=180) == expected


def test_an_unfinished_session_expires_at_half_the_lifetime_and_a_late_finish_never_comes() -> None:
    never_started = Plan(created_at=0, start_after=None, finish_after=None, outcome=None)
    assert [status_at(never_started, t, 180) for t in (0, 89, 90, 179, 180)] == [
        "CREATED",
        "CREATED",
        "EXPIRED",
        "EXPIRED",
        None,
    ]
    too_late = Plan(created_at=0, start_after=1, finish_after=100, outcome="FAILED")
    assert [status_at(too_late, t, 180) for t in (1, 95, 120)] == [
        "IN_PROGRESS",
        "EXPIRED",
        "EXPIRED",
    ]
    assert status_at(too_late, 120, 180, expire_unfinished=150) == "FAILED"
    assert status_at(too_late, 10**6, None) == "FAILED"  # timeless: nothing expires


def test_a_plan_that_finishes_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="finish_after"):
        Plan(created_at=0, start_after=None, finish_after=3, outcome="SUCCEEDED")
    with pytest.raises(ValueError, match="outcome"):
        Plan(created_at=0, start_after=1, finish_after=3, outcome=None)


# --- sessions over HTTP ---------------------------------------------------------------------


async def test_a_created_session_moves_through_its_life_as_the_clock_moves(
    timed: EmulatorThread, clock: VirtualClock
) -> None:
    [sid] = timed.create_sessions(1, start_after=5, finish_after=10, fate="SUCCEEDED")
    seen = []
    async with rekognition(timed.url) as rek:
        for step in (0, 5, 5, 169.5, 0.5):
            clock.advance(step)
            seen.append(await answer(rek, sid))
    created, started, finished, last, gone = seen
    assert created == {"SessionId": sid, "Status": "CREATED"}
    assert started["Status"] == "IN_PROGRESS"
    assert started["Challenge"]["Type"] in CHALLENGE_TYPES
    assert finished["Status"] == "SUCCEEDED"
    assert 50 <= finished["Confidence"] <= 100
    assert finished["Challenge"] == started["Challenge"]
    assert last == finished
    assert gone == "SessionNotFoundException"


async def test_a_session_never_finished_answers_expired_then_disappears(
    timed: EmulatorThread, clock: VirtualClock
) -> None:
    [started, idle] = [
        *timed.create_sessions(1, start_after=1, fate="EXPIRED"),
        *timed.create_sessions(1, start_after=None),
    ]
    async with rekognition(timed.url) as rek:
        clock.advance(2)
        assert (await answer(rek, started))["Status"] == "IN_PROGRESS"
        assert await answer(rek, idle) == {"SessionId": idle, "Status": "CREATED"}
        clock.advance(88)
        assert await answer(rek, started) == {"SessionId": started, "Status": "EXPIRED"}
        assert await answer(rek, idle) == {"SessionId": idle, "Status": "EXPIRED"}
        clock.advance(90)
        assert await answer(rek, idle) == "SessionNotFoundException"


async def test_population_sessions_answer_as_their_plan_says_at_every_moment(
    timed: EmulatorThread, clock: VirtualClock
) -> None:
    population = timed.population
    sample = population.ids()[:40]
    statuses = set()
    async with rekognition(timed.url) as rek:
        for _ in range(4):
            now = timed.now()
            for sid in sample:
                plan = population.plan(sid, 180)
                assert plan is not None
                expected = status_at(plan, now, 180)
                statuses.add(expected)
                got = await answer(rek, sid)
                if expected is None:
                    assert got == "SessionNotFoundException"
                else:
                    assert got == population.body(sid, expected)
            clock.advance(16)
    assert {"CREATED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "EXPIRED", None} <= statuses
    finished = [s for s in population.ids() if population.status(s) == "SUCCEEDED"]
    assert population.body(finished[0], "SUCCEEDED") == population.response(finished[0])


async def test_new_per_second_creates_sessions_on_the_clock_and_lists_them_since_a_point(
    clock: VirtualClock,
) -> None:
    settings = EmulatorSettings(
        sessions=5, seed=2, new_per_second=2, new_start_after=1, new_finish_after=3
    )
    with EmulatorThread(settings, clock=clock.now) as emu:
        assert emu.sessions_since(0) == []
        clock.advance(5)
        made = emu.sessions_since(0)
        assert [row["created_at"] for row in made] == [k / 2 for k in range(1, 11)]
        async with aiohttp.ClientSession() as http:
            async with http.get(emu.url + "/_emulator/sessions", params={"since": "3.5"}) as r:
                listed = await r.json()
            async with http.post(
                emu.url + "/_emulator/sessions", json={"count": 2, "fate": "FAILED"}
            ) as r:
                created = await r.json()
            async with http.post(emu.url + "/_emulator/sessions", json={"fate": "LOST"}) as r:
                assert r.status == 400
                assert "fate" in (await r.json())["error"]
        assert listed["now"] == 5
        assert [row["id"] for row in listed["sessions"]] == [row["id"] for row in made[6:]]
        assert created["created_at"] == 5
        assert len(set(created["ids"]) | {row["id"] for row in made}) == 12
        async with rekognition(emu.url) as rek:
            first = made[0]["id"]  # created at 0.5, finished at 3.5, timeless: stays
            assert (await answer(rek, first))["Status"] in ("SUCCEEDED", "FAILED")
            assert await answer(rek, created["ids"][0]) == {
                "SessionId": created["ids"][0],
                "Status": "CREATED",
            }
            clock.advance(10)
            assert (await answer(rek, created["ids"][0]))["Status"] == "FAILED"
        assert emu.stats()["sessions_created"] == 32


def test_created_ids_are_the_same_for_the_same_seed(clock: VirtualClock) -> None:
    ids = []
    for _ in range(2):
        with EmulatorThread(EmulatorSettings(sessions=0, seed=5), clock=clock.now) as emu:
            ids.append(emu.create_sessions(3))
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 3


# --- regions, production load, Service Quotas ------------------------------------------------

REGIONS = ("eu-west-1", "us-east-1")


async def test_each_session_answers_only_in_its_own_region(clock: VirtualClock) -> None:
    settings = EmulatorSettings(sessions=40, seed=4, regions=REGIONS)
    with EmulatorThread(settings, clock=clock.now) as emu:
        homes = {sid: emu.population.region(sid, REGIONS) for sid in emu.population.ids()}
        assert set(homes.values()) == set(REGIONS)
        [pinned] = emu.create_sessions(1, start_after=None, region="eu-west-1")
        async with rekognition(emu.url, "eu-west-1") as eu, rekognition(emu.url) as us:
            for sid, home in list(homes.items())[:12]:
                here, there = (eu, us) if home == "eu-west-1" else (us, eu)
                assert await answer(here, sid) == emu.population.response(sid)
                assert await answer(there, sid) == "SessionNotFoundException"
            assert (await answer(eu, pinned))["Status"] == "CREATED"
            assert await answer(us, pinned) == "SessionNotFoundException"
        regions = emu.stats()["regions"]
        assert regions["eu-west-1"]["requests"] == regions["us-east-1"]["requests"] == 13
        assert regions["eu-west-1"]["ok"] + regions["us-east-1"]["ok"] == 13
        assert regions["eu-west-1"]["not_found"] + regions["us-east-1"]["not_found"] == 13


async def test_each_region_has_its_own_bucket(clock: VirtualClock) -> None:
    settings = EmulatorSettings(
        sessions=10, seed=4, tps=1, burst=2, regions=REGIONS, region_tps={"eu-west-1": 2}
    )
    with EmulatorThread(settings, clock=clock.now) as emu:
        sid = emu.population.ids()[0]
        async with rekognition(emu.url, "eu-west-1") as eu, rekognition(emu.url) as us:
            got = [await answer(c, sid) for c in (eu, eu, eu, us, us, us)]
            clock.advance(0.5)  # eu refills one token (2/s), us half of one (1/s)
            got += [await answer(eu, sid), await answer(us, sid)]
        throttled = [g == "ThrottlingException" for g in got]
        assert throttled == [False, False, True, False, False, True, False, True]
        assert emu.stats()["regions"]["eu-west-1"]["throttled"] == 1


async def test_production_load_draws_from_the_same_bucket_and_counts_its_throttles(
    clock: VirtualClock,
) -> None:
    settings = EmulatorSettings(sessions=10, seed=4, tps=4, burst=1, background_tps=4)
    with EmulatorThread(settings, clock=clock.now) as emu:
        sid = emu.population.ids()[0]
        async with rekognition(emu.url) as rek:
            clock.advance(0.375)  # production took the token refilled at 0.25
            assert await answer(rek, sid) == "ThrottlingException"
            clock.advance(0.625)
            assert emu.stats()["production"]["calls"] == 4
            assert emu.stats()["production"]["throttled"] == 0
            emu.configure(background_tps=8)  # twice the quota: every other call refused
            clock.advance(1)
            production = emu.stats()["production"]
            assert (production["calls"], production["throttled"]) == (12, 4)
            emu.configure(background_tps=0)
            clock.advance(1)
            assert isinstance(await answer(rek, sid), dict)  # the bucket is the audit's again
        assert emu.stats()["production"]["calls"] == 12


async def test_service_quotas_lists_the_liveness_quota_at_the_regions_tps(
    clock: VirtualClock,
) -> None:
    settings = EmulatorSettings(sessions=1, tps=25, regions=REGIONS, region_tps={"eu-west-1": 7.5})
    with EmulatorThread(settings, clock=clock.now) as emu:
        for region, value in (("eu-west-1", 7.5), ("us-east-1", 25.0)):
            async with client(emu.url, region, "service-quotas") as sq:
                quotas = (await sq.list_service_quotas(ServiceCode="rekognition"))["Quotas"]
                [liveness] = [q for q in quotas if q["QuotaName"] == QUOTA_NAME]
                assert liveness["Value"] == value
                assert liveness["QuotaArn"].startswith(f"arn:aws:servicequotas:{region}:")
                assert len(quotas) == 2  # the caller must pick by name
                with pytest.raises(ClientError, match="NoSuchResourceException"):
                    await sq.list_service_quotas(ServiceCode="s3")
        assert emu.stats()["quota_lookups"] == 4
        assert emu.stats()["requests"] == 4  # arrivals, none of them answered as Rekognition
        assert emu.stats()["outcomes"]["ok"] == 0
        emu.configure(tps=None, region_tps=None)
        async with client(emu.url, "us-east-1", "service-quotas") as sq:
            quotas = (await sq.list_service_quotas(ServiceCode="rekognition"))["Quotas"]
        assert QUOTA_NAME not in [q["QuotaName"] for q in quotas]


def test_time_and_region_settings_are_validated_naming_the_field() -> None:
    for kw, name in [
        ({"lifetime": 0}, "lifetime"),
        ({"new_per_second": -1}, "new_per_second"),
        ({"background_tps": -2}, "background_tps"),
        ({"regions": ["Europe"]}, "regions"),
        ({"regions": []}, "regions"),
        ({"region_tps": {"eu-west-1": 0}}, "region_tps"),
    ]:
        with pytest.raises(ValueError, match=name):
            EmulatorSettings(**kw)  # type: ignore[arg-type]  # test table
    assert EmulatorSettings(regions=["eu-west-1"]).regions == ("eu-west-1",)  # type: ignore[arg-type]
