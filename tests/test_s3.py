"""S3 in and out, against moto's server on loopback (and the emulator for Rekognition)."""

from __future__ import annotations

import asyncio
import io
import json
import random
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from batch.aws.s3 import S3Store, open_store
from batch.aws.session import client_config, open_session
from batch.config import Settings
from batch.emulator import EmulatorThread, write_input
from batch.engine.publish import Merged
from batch.errors import NotFoundError, PublishError, RetryableError
from batch.pacing.limiter import Limiter
from batch.pacing.retry import RetryPolicy
from batch.run.audit import Destination, publish_or_keep
from batch.store.locations import S3Url
from batch.store.manifest import MANIFEST_KEY, Manifest
from tests.helpers import (
    ACCESS_KEY,
    DEADLINE,
    SECRET_KEY,
    assert_exactly_as_served,
    dated,
    run_cli,
    start_cli,
    utc_day,
    wait_for_lines,
)
from tests.s3server import MotoServer

PENDING = ("CREATED", "IN_PROGRESS")  # asked again by a rerun, on purpose
BUCKET = "audit-reports"


def get_report(client: Any, key: str, bucket: str = BUCKET) -> pd.DataFrame:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pd.read_parquet(io.BytesIO(body)).set_index("session_id")


def upload_input(client: Any, tmp_path: Path, ids: list[str], key: str) -> str:
    local = tmp_path / Path(key).name
    write_input(local, ids)
    client.put_object(Bucket=BUCKET, Key=key, Body=local.read_bytes())
    return f"s3://{BUCKET}/{key}"


def test_s3_input_to_s3_output(emulator: EmulatorThread, s3: MotoServer, tmp_path: Path) -> None:
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    ids = list(emulator.population.ids()[:120])
    source = upload_input(client, tmp_path, ids, "inputs/2026-11-24/sessions.parquet")
    work = tmp_path / "work"
    before = utc_day()
    ran = run_cli(
        "run", source, "--output", f"s3://{BUCKET}/liveness/date={{date}}/part.parquet",
        "--work-dir", work,
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    today = dated(before, lambda day: f"date={day}/part.parquet" in ran.stdout)
    key = f"liveness/date={today}/part.parquet"
    assert f"report: s3://{BUCKET}/{key}" in ran.stdout
    assert_exactly_as_served(get_report(client, key), emulator, ids)

    head = client.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    manifest = json.loads(pq.read_metadata(io.BytesIO(body)).metadata[MANIFEST_KEY])
    assert head["Metadata"]["rows-sha256"] == manifest["rows_sha256"]
    assert manifest["rows"] == 120
    provenance = json.loads(pq.read_metadata(io.BytesIO(body)).metadata[b"liveness_audit"])
    assert provenance["input_path"] == source
    # once the report is in S3 the work directory keeps nothing, not even the run lock,
    # but the seal of the report uploaded (its SHA-256: the next run need not re-read it)
    files = [p for p in work.rglob("*") if p.is_file()]
    assert [p.name for p in files if p.parent.name != "seals"] == []
    assert len([p for p in files if p.parent.name == "seals"]) == 1
    assert ACCESS_KEY not in ran.stdout + ran.stderr
    assert SECRET_KEY not in ran.stdout + ran.stderr


def test_nightly_partitions_read_back_as_one_dataset(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    nights = {
        "2026-11-23": emulator.population.ids()[:30],
        "2026-11-24": emulator.population.ids()[30:75],
    }
    for night, ids in nights.items():
        source = tmp_path / f"{night}.csv"
        write_input(source, list(ids))
        output = f"s3://{BUCKET}/liveness/date={night}/part.parquet"
        assert run_cli("run", source, "--output", output).code == 0

    fs = pafs.S3FileSystem(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        endpoint_override=s3.url,
        scheme="http",
        region="us-east-1",
    )
    table = ds.dataset(f"{BUCKET}/liveness", filesystem=fs, partitioning="hive").to_table()
    frame = table.to_pandas()
    assert len(frame) == 75
    assert frame.groupby("date").size().to_dict() == {"2026-11-23": 30, "2026-11-24": 45}
    assert set(frame["session_id"]) == set(nights["2026-11-23"]) | set(nights["2026-11-24"])


def test_missing_s3_input_is_a_usage_error(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    ran = run_cli("run", f"s3://{BUCKET}/nope.csv", "--output", tmp_path / "r.parquet")
    assert ran.code == 2
    assert ran.stderr.strip() == f"liveness-audit: error: input not found: s3://{BUCKET}/nope.csv"
    assert emulator.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("s3://no-such-bucket/r.parquet", "S3 bucket does not exist: no-such-bucket"),
        (f"s3://{BUCKET}/", "names no object"),
        ("s3://A_B/r.parquet", "invalid S3 bucket name 'A_B'"),
        (f"s3://{BUCKET}/r.csv", "output must be a .parquet file"),
        (f"s3://{BUCKET}/a/../../r.parquet", "segment in its S3 key"),
    ],
)
def test_bad_s3_output_fails_before_any_call(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path, output: str, message: str
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:5]))
    ran = run_cli("run", source, "--output", output)
    assert ran.code == 2
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1
    assert emulator.stats()["requests"] == 0


def test_failed_upload_keeps_the_report_and_a_rerun_uploads_it(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    ids = list(emulator.population.ids()[:50])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = f"s3://{BUCKET}/r/part.parquet"
    work = tmp_path / "work"
    # S3 unreachable for the whole run: everything is fetched, the upload fails.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    monkeypatch.setenv("LIVENESS_AUDIT_MAX_ATTEMPTS", "2")
    ran = run_cli("run", source, "--output", output, "--work-dir", work)
    assert ran.code == 1
    local = work / "reports" / BUCKET / "r" / "part.parquet"
    assert f"it is complete at {local}" in ran.stderr
    assert len(pd.read_parquet(local)) == 50
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET)
    sent = emulator.stats()["requests"]
    assert sent == 50

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.url)
    again = run_cli("run", source, "--output", output, "--work-dir", work)
    assert again.code == 0, again.stderr
    pending = [sid for sid in ids if emulator.population.status(sid) in PENDING]
    # nothing settled fetched twice (pending sessions are asked again, on purpose)
    assert emulator.stats()["requests"] == sent + len(pending)
    assert_exactly_as_served(get_report(client, "r/part.parquet"), emulator, ids)
    assert not local.exists()


async def test_store_uploads_large_files_in_parts_and_heads_them(
    s3: MotoServer, tmp_path: Path
) -> None:
    """Above the part size an upload is multipart: the key shows all of it or nothing."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    data = random.Random(1).randbytes(11 * 1024 * 1024)  # noqa: S311  # test data, not crypto
    path = tmp_path / "big.parquet"
    path.write_bytes(data)
    settings = Settings()
    session = await open_session(settings)
    policy = RetryPolicy(on=(RetryableError,), attempts=3, wait_initial=0, wait_max=0)
    async with open_store(settings, session, policy) as store:
        store.part_size = 5 * 1024 * 1024
        url = S3Url(BUCKET, "reports/big.parquet")
        await store.upload(path, url, metadata={"rows": "7"})
        info = await store.head(url)
        with pytest.raises(NotFoundError):
            await store.head(S3Url(BUCKET, "reports/none.parquet"))
    assert info.size == len(data)
    assert info.etag.endswith("-3")  # S3's multipart ETag: md5 of the parts, "-", count
    assert info.sse == "AES256"
    assert client.get_object(Bucket=BUCKET, Key=url.key)["Body"].read() == data
    assert client.head_object(Bucket=BUCKET, Key=url.key)["Metadata"] == {"rows": "7"}
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_interrupted_s3_run_resumes_from_the_local_checkpoint(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    emulator.configure(latency=0.05)
    ids = list(emulator.population.ids()[:100])
    source = upload_input(client, tmp_path, ids, "in/sessions.csv")
    output = f"s3://{BUCKET}/r/part.parquet"
    work = tmp_path / "work"
    args = ("run", source, "--output", output, "--work-dir", work, "--concurrency", "2")
    journal = work / "reports" / BUCKET / "r" / "part.parquet.journal"
    first = start_cli(*args)
    # stop once 10 answers are journalled: 100 calls of 50 ms, 2 at a time, take 2.5 s
    wait_for_lines(journal, 10, first)
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=DEADLINE)
    assert first.returncode == 1, stderr
    # as with a local report: every session once, the ones not reached as NotAttempted
    partial = get_report(client, "r/part.parquet")
    assert len(partial) == 100
    answered = partial.index[partial["error_code"] != "NotAttempted"]
    kept = len(answered)
    assert 10 <= kept < 100
    again = [sid for sid in answered if emulator.population.status(sid) in PENDING]
    sent = emulator.stats()["requests"]

    second = run_cli(*args)
    assert second.code == 0, second.stderr
    assert f"{kept - len(again)} kept from the report" in second.stdout
    assert emulator.stats()["requests"] - sent == 100 - kept + len(again)
    assert_exactly_as_served(get_report(client, "r/part.parquet"), emulator, ids)
    assert not journal.exists()


def test_summarize_reads_the_nights_under_an_s3_prefix(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    for night, ids in (("2026-11-23", slice(0, 30)), ("2026-11-24", slice(30, 75))):
        source = tmp_path / f"{night}.csv"
        write_input(source, list(emulator.population.ids()[ids]))
        output = f"s3://{BUCKET}/liveness/date={night}/part.parquet"
        assert run_cli("run", source, "--output", output).code == 0
    ran = run_cli("summarize", f"s3://{BUCKET}/liveness/", "--csv", tmp_path / "flat.csv")
    assert ran.code == 0, ran.stderr
    assert "Trend by night" in ran.stdout
    assert f"s3://{BUCKET}/liveness/date=2026-11-24/part.parquet" in ran.stdout
    flat = pd.read_csv(tmp_path / "flat.csv")
    assert len(flat) == 75
    assert flat["report"].nunique() == 2
    one = run_cli("summarize", f"s3://{BUCKET}/liveness/date=2026-11-23/part.parquet")
    assert one.code == 0
    assert "30 sessions" in one.stdout
    none = run_cli("summarize", f"s3://{BUCKET}/elsewhere/")
    assert none.code == 2
    assert f"no .parquet reports found under s3://{BUCKET}/elsewhere/" in none.stderr


class FirstCallSeen:
    """The real S3 client, setting ``started`` when the store sends its first request."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.started = asyncio.Event()

    def __getattr__(self, operation: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._client, operation)

        async def call(**params: Any) -> Any:
            self.started.set()
            return await method(**params)

        return call


async def test_an_upload_stopped_by_a_second_signal_keeps_the_report(
    s3: MotoServer, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    local = tmp_path / "report.parquet"
    local.write_bytes(b"PAR1 a complete report PAR1")
    destination = Destination(local, S3Url(BUCKET, "r/report.parquet"))
    manifest = Manifest(rows=0, input_sha256="0" * 64, rows_sha256="0" * 64)
    settings = Settings()
    policy = RetryPolicy(on=(RetryableError,), attempts=3, wait_initial=0, wait_max=0)
    session = await open_session(settings)
    async with session.client("s3", config=client_config(settings, pool=2)) as client:
        watched = FirstCallSeen(client)
        store = S3Store(watched, Limiter(settings.s3_rate), policy)
        committed = Merged(manifest, etag=None)  # the key is new: nothing to merge
        task = asyncio.create_task(
            publish_or_keep(store, destination, lambda _: manifest, merged=committed, run_id="run")
        )
        await watched.started.wait()  # the PutObject is on its way to S3
        task.cancel()  # what a second SIGTERM does to the run
        error = await task
    assert isinstance(error, PublishError)
    assert f"the report is complete at {local}" in str(error)
    assert local.read_bytes() == b"PAR1 a complete report PAR1"
    assert "Contents" not in s3.client().list_objects_v2(Bucket=BUCKET)
