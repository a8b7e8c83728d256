"""S3 faults moto cannot make, made by a proxy in front of it (tests/s3proxy.py): each is
retried, or reported for what it is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from batch.emulator import EVIDENCE_BUCKET, EmulatorThread, write_input
from tests.helpers import Evidence, read_report, run_cli, stored
from tests.s3proxy import S3Proxy
from tests.s3server import MotoServer

BUCKET = "nightly"


@pytest.fixture
def proxy(s3: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Proxy]:
    """moto behind the fault-injecting proxy; the tool is pointed at the proxy."""
    with S3Proxy(s3.url) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
        yield server


def with_images(emulator: EmulatorThread, count: int) -> list[str]:
    return [sid for sid in emulator.population.ids()[:count] if stored(emulator, sid)]


def audited(emulator: EmulatorThread, s3: MotoServer, tmp_path: Path, ids: list[str]) -> Path:
    """A report of ``ids`` whose evidence was all found present (through the proxy)."""
    Evidence(emulator, s3, ids)
    source = tmp_path / "in.csv"
    write_input(source, ids)
    report = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", report, "--verify-evidence")
    assert ran.code == 0, ran.stderr
    return report


def test_a_slowdown_on_the_report_upload_is_retried_and_the_upload_succeeds(
    emulator: EmulatorThread, s3: MotoServer, proxy: S3Proxy, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    ids = list(emulator.population.ids()[:30])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    slowdown = proxy.fail("PUT", "r/part.parquet", "slowdown")
    ran = run_cli("run", source, "--output", f"s3://{BUCKET}/r/part.parquet")
    assert ran.code == 0, ran.stderr
    assert slowdown.served == 1
    body = s3.client().get_object(Bucket=BUCKET, Key="r/part.parquet")["Body"].read()
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(body)
    assert sorted(pd.read_parquet(copy)["session_id"]) == sorted(ids)


def test_a_dropped_connection_on_the_input_download_is_retried(
    emulator: EmulatorThread, s3: MotoServer, proxy: S3Proxy, tmp_path: Path
) -> None:
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    ids = list(emulator.population.ids()[:30])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    client.upload_file(str(source), BUCKET, "in/night.csv")
    dropped = proxy.fail("GET", "in/night.csv", "drop")
    output = tmp_path / "report.parquet"
    ran = run_cli("run", f"s3://{BUCKET}/in/night.csv", "--output", output)
    assert ran.code == 0, ran.stderr
    assert dropped.served == 1
    assert sorted(read_report(output).index) == sorted(ids)


def test_a_500_on_an_evidence_head_is_retried(
    emulator: EmulatorThread, s3: MotoServer, proxy: S3Proxy, tmp_path: Path
) -> None:
    ids = with_images(emulator, 40)
    key = stored(emulator, ids[0])[0]["Name"]
    errors = proxy.fail("HEAD", key, "500", times=2)
    report = read_report(audited(emulator, s3, tmp_path, ids))
    assert errors.served == 2
    assert report.loc[ids[0], "reference_evidence"] == "present"
    assert ids[0] not in set(report.index[report["error_code"].notna()])


def test_a_403_on_one_evidence_key_is_forbidden_for_that_image_only(
    emulator: EmulatorThread, s3: MotoServer, proxy: S3Proxy, tmp_path: Path
) -> None:
    ids = with_images(emulator, 40)
    victim = next(sid for sid in ids if len(stored(emulator, sid)) > 1)
    key = stored(emulator, victim)[0]["Name"]
    refused = proxy.fail("HEAD", key, "403", times=None)
    Evidence(emulator, s3, ids)
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output, "--verify-evidence")
    assert ran.code == 1, ran.stderr  # unresolved: a rerun checks again
    assert refused.served >= 1
    report = read_report(output)
    assert report.loc[victim, "reference_evidence"] == "forbidden"
    assert report.loc[victim, "error_code"] == "EvidenceUnverified"
    audits: list[dict[str, Any]] = list(report.at[victim, "audit_images"])  # type: ignore[arg-type]  # an object cell
    assert [image["evidence"] for image in audits] == ["present"] * len(audits)
    others = report.drop(index=victim)
    assert (others["reference_evidence"] == "present").all()
    assert others["error_code"].isna().all()


def test_verify_evidence_exits_3_when_s3_refuses_a_head_and_reports_no_change(
    emulator: EmulatorThread, s3: MotoServer, proxy: S3Proxy, tmp_path: Path
) -> None:
    ids = with_images(emulator, 30)
    report = audited(emulator, s3, tmp_path, ids)
    key = stored(emulator, ids[0])[0]["Name"]
    refused = proxy.fail("HEAD", key, "403", times=None)
    ran = run_cli("verify", report, "--evidence")
    assert ran.code == 3, ran.stderr
    assert refused.served >= 1
    assert f"{ids[0]} reference: s3://{EVIDENCE_BUCKET}/{key}: cannot check: S3 refused" in (
        ran.stderr
    )
    assert "changed" not in ran.stderr
    assert "missing" not in ran.stderr
    assert "intact: " in ran.stdout
    assert "1 refused by S3 (403)" in ran.stdout


def test_verify_evidence_retries_a_throttled_head(
    emulator: EmulatorThread, s3: MotoServer, proxy: S3Proxy, tmp_path: Path
) -> None:
    ids = with_images(emulator, 30)
    report = audited(emulator, s3, tmp_path, ids)
    key = stored(emulator, ids[0])[0]["Name"]
    throttled = proxy.fail("HEAD", key, "slowdown", times=2)
    ran = run_cli("verify", report, "--evidence")
    assert ran.code == 0, ran.stderr
    assert throttled.served == 2
    assert "all still in place" in ran.stdout


def test_verify_evidence_says_cannot_check_and_exits_4_when_a_head_keeps_failing(
    emulator: EmulatorThread,
    s3: MotoServer,
    proxy: S3Proxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = with_images(emulator, 30)
    report = audited(emulator, s3, tmp_path, ids)
    key = stored(emulator, ids[0])[0]["Name"]
    monkeypatch.setenv("LIVENESS_AUDIT_MAX_ATTEMPTS", "3")
    failing = proxy.fail("HEAD", key, "500", times=None)
    ran = run_cli("verify", report, "--evidence")
    assert ran.code == 4, ran.stderr
    assert failing.served == 3  # every attempt of the retry policy
    assert "cannot check: S3 kept failing" in ran.stderr
    assert "changed" not in ran.stderr
    assert "missing" not in ran.stderr
