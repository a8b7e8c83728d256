"""The emulator on its own: protocol, population, quota, faults, control routes."""

from __future__ import annotations

import base64
import csv
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
import pyarrow.parquet as pq
import pytest

from batch.emulator import (
    CHALLENGE_TYPES,
    FAULTS,
    EmulatorSettings,
    EmulatorThread,
    Population,
    challenge,
    planted_disagreements,
    write_input,
)
from tests.helpers import run_cli

TARGET = "RekognitionService.GetFaceLivenessSessionResults"
AUTH = "AWS4-HMAC-SHA256 Credential={key}/20261124/us-east-1/rekognition/aws4_request, x"


async def call(
    url: str,
    session_id: str | None,
    *,
    key: str = "AKIDTEST",
    target: str = TARGET,
    auth: bool = True,
) -> tuple[int, dict[str, Any]]:
    headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
    if auth:
        headers["Authorization"] = AUTH.format(key=key)
    body = {} if session_id is None else {"SessionId": session_id}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + "/", data=json.dumps(body), headers=headers) as response,
    ):
        return response.status, json.loads(await response.read())


def test_population_is_deterministic_and_varied() -> None:
    a, b = Population(3, 500), Population(3, 500)
    assert a.ids() == b.ids()
    assert Population(4, 5).ids() != a.ids()[:5]
    assert all(a.response(s) == b.response(s) for s in a.ids())
    bodies = [a.response(s) for s in a.ids()]
    statuses = Counter(body["Status"] for body in bodies if body)
    assert set(statuses) == {"SUCCEEDED", "FAILED", "EXPIRED", "IN_PROGRESS", "CREATED"}
    assert [a.status(s) for s in a.ids()[:5]] == [
        "SUCCEEDED",
        "FAILED",
        "EXPIRED",
        "IN_PROGRESS",
        "CREATED",
    ]
    assert a.response(a.ids()[5])["Confidence"] == 100.0  # type: ignore[index]
    assert a.response(a.ids()[6])["Confidence"] == 0.0  # type: ignore[index]
    images = [
        image
        for body in bodies
        if body
        for image in [body.get("ReferenceImage"), *body.get("AuditImages", [])]
        if image
    ]
    inline = [i for i in images if "Bytes" in i]
    assert inline
    assert any("S3Object" in i for i in images)
    data = base64.b64decode(inline[0]["Bytes"])
    assert data.startswith(b"\xff\xd8\xff\xe0")
    assert data.endswith(b"\xff\xd9")
    for body in bodies:
        assert body is not None
        if body["Status"] == "SUCCEEDED":
            assert 50 <= body["Confidence"] <= 100
        elif body["Status"] == "FAILED":
            assert 0 <= body["Confidence"] <= 60
        else:
            assert "Confidence" not in body
            assert "ReferenceImage" not in body
    assert a.response("00000000-0000-4000-8000-000000000000") is None


def test_expiry_model() -> None:
    population = Population(1, 200)
    for sid in population.ids():
        body = population.response(sid, expire_after=600)
        assert body is not None
        if population.age_seconds(sid) > 600:
            assert body == {"SessionId": sid, "Status": "EXPIRED"}
        else:
            assert body == population.response(sid)


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_write_input(tmp_path: Path, name: str) -> None:
    ids = Population(1, 10).ids()
    path = tmp_path / name
    write_input(path, ids)
    if name.endswith(".csv"):
        assert path.read_text().splitlines() == ["session_id", *ids]
    else:
        assert pq.read_table(path).column("session_id").to_pylist() == list(ids)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write_input(tmp_path / "in.txt", ids)


async def test_protocol_answers(emulator: EmulatorThread) -> None:
    url, sid = emulator.url, emulator.population.ids()[0]
    assert await call(url, sid) == (200, emulator.population.response(sid))
    status, body = await call(url, sid, auth=False)
    assert (status, body["__type"]) == (400, "MissingAuthenticationTokenException")
    for key, code in [
        ("DENIEDKEY", "AccessDeniedException"),
        ("EXPIREDKEY", "ExpiredTokenException"),
        ("INVALIDKEY", "UnrecognizedClientException"),
    ]:
        assert (await call(url, sid, key=key))[1]["__type"] == code
    status, body = await call(url, sid, target="RekognitionService.DetectFaces")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    status, body = await call(url, "not-an-id")
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    status, body = await call(url, "00000000-0000-4000-8000-000000000000")
    assert (status, body["__type"]) == (400, "SessionNotFoundException")
    stats = emulator.stats()
    assert stats["requests"] == 8
    assert stats["outcomes"]["denied"] == 3
    assert stats["ok_by_session"] == {sid: 1}


@pytest.mark.parametrize(
    ("mode", "statuses"),
    [
        ("ThrottlingException", {500}),
        ("ProvisionedThroughputExceededException", {400}),
        ("mixed", {400, 500}),
    ],
)
async def test_quota_is_a_token_bucket(
    emulator: EmulatorThread, mode: str, statuses: set[int]
) -> None:
    emulator.configure(tps=0.001, burst=3, throttle_error=mode)
    sid = emulator.population.ids()[1]
    answers = [await call(emulator.url, sid) for _ in range(20)]
    assert [status for status, _ in answers[:3]] == [200, 200, 200]
    throttled = answers[3:]
    assert {status for status, _ in throttled} == statuses
    assert {body["__type"] for _, body in throttled} <= {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
    }
    assert emulator.stats()["outcomes"]["throttled"] == 17


async def test_scripted_faults_come_in_order_then_normal_answers(emulator: EmulatorThread) -> None:
    sid = emulator.population.ids()[2]
    emulator.script(sid, ["throttle", "server_error", "not_found", "empty", "malformed"])
    got = [await call(emulator.url, sid) for _ in range(3)]
    assert [b["__type"] for _, b in got] == [
        "ThrottlingException",
        "InternalServerError",
        "SessionNotFoundException",
    ]
    assert await call(emulator.url, sid) == (200, {})
    with pytest.raises(json.JSONDecodeError):
        await call(emulator.url, sid)
    assert (await call(emulator.url, sid))[0] == 200
    with pytest.raises(ValueError, match="unknown faults"):
        emulator.script(sid, ["explode"])
    assert "drop" in FAULTS


@pytest.mark.parametrize("fault", ["drop", "truncated"])
async def test_connection_faults_break_the_connection(emulator: EmulatorThread, fault: str) -> None:
    sid = emulator.population.ids()[3]
    emulator.script(sid, [fault])
    with pytest.raises(aiohttp.ClientError):
        await call(emulator.url, sid)
    assert (await call(emulator.url, sid))[0] == 200


async def test_random_faults_at_full_rate(emulator: EmulatorThread) -> None:
    emulator.configure(error_rate=1.0)
    assert (await call(emulator.url, emulator.population.ids()[0]))[0] == 500
    emulator.configure(error_rate=0.0, empty_rate=1.0)
    assert await call(emulator.url, emulator.population.ids()[0]) == (200, {})


async def test_control_routes(emulator: EmulatorThread) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(emulator.url + "/_emulator/config", json={"tps": 7}) as r:
            assert r.status == 200
            assert (await r.json())["tps"] == 7
        async with http.post(emulator.url + "/_emulator/config", json={"error_rate": 3}) as r:
            assert r.status == 400
            assert "error_rate" in (await r.json())["error"]
        async with http.post(emulator.url + "/_emulator/reset") as r:
            assert r.status == 200
        async with http.get(emulator.url + "/_emulator/stats") as r:
            assert (await r.json())["requests"] == 0
    assert emulator.emulator.settings.tps is None


def test_settings_are_validated_naming_the_field() -> None:
    for kw, name in [
        ({"tps": 0}, "tps"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"latency": -1}, "latency"),
        ({"sessions": -1}, "sessions"),
    ]:
        with pytest.raises(ValueError, match=name):
            EmulatorSettings(**kw)  # type: ignore[arg-type]  # test table


def test_emulator_command_serves_and_writes_its_input(tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    url_file, ids = tmp_path / "url", tmp_path / "ids.csv"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch",
            "emulator",
            "--sessions",
            "5",
            "--tps",
            "9",
            "--url-file",
            str(url_file),
            "--write-input",
            str(ids),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("emulator listening on http://127.0.0.1:")
    assert "quota 9 tps" in line
    assert url_file.read_text().strip() == line.split()[3]
    assert len(ids.read_text().splitlines()) == 6
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()


async def test_answers_carry_the_challenge_once_the_user_started(emulator: EmulatorThread) -> None:
    population = Population(3, 600)
    bodies = [population.response(s) or {} for s in population.ids()]
    started = [b for b in bodies if b["Status"] in ("IN_PROGRESS", "SUCCEEDED", "FAILED")]
    assert all("Challenge" not in b for b in bodies if b not in started)
    assert {b["Challenge"]["Type"] for b in started} == set(CHALLENGE_TYPES)
    assert {b["Challenge"]["Version"] for b in started} == {"1.0.0", "2.0.0"}
    sid = emulator.population.ids()[0]  # SUCCEEDED
    session = aioboto3.Session()
    async with session.client(
        "rekognition", endpoint_url=emulator.url, region_name="us-east-1"
    ) as rek:
        parsed = await rek.get_face_liveness_session_results(SessionId=sid)
    expected = emulator.population.response(sid) or {}
    assert parsed["Challenge"] == challenge(7, sid) == expected["Challenge"]


@pytest.mark.parametrize("name", ["in.csv", "in.parquet"])
def test_a_reconciliation_input_plants_a_disagreement_every_97th_row_with_a_result(
    tmp_path: Path, name: str
) -> None:
    population = Population(7, 1000)
    ids = population.ids()
    path = tmp_path / name
    write_input(path, ids, reconcile_with=population)
    if name.endswith(".csv"):
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = pq.read_table(path).to_pylist()
    assert [row["session_id"] for row in rows] == list(ids)
    assert all(re.fullmatch(r"CUST-\d{6}", row["customer_ref"]) for row in rows)
    planted = planted_disagreements(population, ids)
    assert 5 <= len(planted) <= 10
    for number, row in enumerate(rows, start=1):
        body = population.response(row["session_id"]) or {}
        if body["Status"] in ("SUCCEEDED", "FAILED"):
            service = (
                "pass" if body["Status"] == "SUCCEEDED" and body["Confidence"] >= 80 else "fail"
            )
            disagrees = row["app_decision"] != service
            assert disagrees == (row["session_id"] in planted)
            assert disagrees == (number % 97 == 0)
        else:
            assert row["session_id"] not in planted
            assert row["app_decision"] in ("pass", "fail")


def test_emulator_command_refuses_bad_settings_with_one_line_and_exit_2() -> None:
    ran = run_cli("emulator", "--regions", "eu-west-1,Europe")
    assert ran.code == 2
    assert ran.stderr.strip().count("\n") == 0
    assert "regions" in ran.stderr
    assert run_cli("emulator", "--lifetime", "0").code == 2
