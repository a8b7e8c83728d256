"""--verify-evidence and --save-images s3://: the emulator's images, moto's S3."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from batch.emulator import EVIDENCE_BUCKET, EmulatorThread, write_input
from tests.helpers import Evidence, read_report, run_cli, stored
from tests.s3server import MotoServer


def pick(emulator: EmulatorThread, ids: list[str], versioned: bool) -> list[str]:
    return [
        sid
        for sid in ids
        if stored(emulator, sid) and ("Version" in stored(emulator, sid)[0]) == versioned
    ]


def images_of(row: pd.Series) -> list[dict[str, Any]]:
    reference = {
        str(k).removeprefix("reference_"): v
        for k, v in row.items()
        if str(k).startswith("reference_")
    }
    return [reference, *row["audit_images"]]


def test_present_missing_and_changed_evidence(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:200])
    evidence = Evidence(emulator, s3, ids)
    versioned, plain = pick(emulator, ids, True), pick(emulator, ids, False)
    deleted, overwritten, gone = versioned[0], versioned[1], plain[0]
    evidence.delete(stored(emulator, deleted)[0]["Name"])
    evidence.overwrite(stored(emulator, overwritten)[0]["Name"])
    evidence.delete(stored(emulator, gone)[0]["Name"])

    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output, "--verify-evidence")
    assert ran.code == 5, ran.stderr
    assert "stored evidence is missing or changed for 3 sessions" in ran.stderr
    assert "EvidenceMissing 2" in ran.stdout
    assert "EvidenceChanged 1" in ran.stdout

    report = read_report(output)
    assert report.loc[deleted, "error_code"] == "EvidenceMissing"
    assert "the version the service wrote still exists" in str(report.loc[deleted, "error_message"])
    assert report.loc[gone, "error_code"] == "EvidenceMissing"
    assert report.loc[overwritten, "error_code"] == "EvidenceChanged"
    assert report.loc[deleted, "reference_evidence"] == "missing"
    assert report.loc[overwritten, "reference_evidence"] == "changed"
    # the service's answer is still all there
    assert report.loc[deleted, "status"] == emulator.population.status(deleted)

    intact = [
        sid for sid in ids if stored(emulator, sid) and sid not in (deleted, overwritten, gone)
    ]
    assert len(intact) > 20
    for sid in intact:
        row = report.loc[sid]
        assert pd.isna(row["error_code"]), sid
        for image in images_of(row):
            if isinstance(image["s3_name"], str):
                body = evidence.bodies[image["s3_name"]]
                assert image["evidence"] == "present"
                assert image["evidence_size"] == len(body)
                assert (
                    image["evidence_etag"] == hashlib.md5(body, usedforsecurity=False).hexdigest()
                )
                assert image["evidence_last_modified"] is not None
            else:
                assert pd.isna(image["evidence"]) or image["evidence"] is None

    sheet = tmp_path / "flat.xlsx"
    summary = run_cli("summarize", output, "--xlsx", sheet)
    assert summary.code == 0, summary.stderr
    assert "EvidenceMissing" in summary.stdout
    assert "EvidenceChanged" in summary.stdout
    flat = pd.read_excel(sheet).set_index("session_id")
    assert flat.loc[deleted, "reference_evidence"] == "missing"
    assert flat["reference_evidence_last_modified"].notna().sum() > 20

    # Later: in a versioned bucket an overwrite and a delete show as another version
    # at the key, or none; the report's own rows are untouched.
    assert run_cli("verify", output, "--evidence").code == 0
    later_changed, later_deleted = intact[0], intact[1]
    evidence.overwrite(stored(emulator, later_changed)[0]["Name"])
    evidence.delete(stored(emulator, later_deleted)[0]["Name"])
    again = run_cli("verify", output, "--evidence")
    assert again.code == 1
    assert "intact: " in again.stdout
    assert f"{later_changed} reference: s3://" in again.stderr
    assert "changed (version " in again.stderr
    assert f"{later_deleted} reference: s3://" in again.stderr
    assert "missing (deleted since the audit)" in again.stderr


def test_verify_evidence_later_finds_objects_deleted_or_changed_since(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    """An unversioned bucket: only the ETag and size the report recorded tell a change."""
    ids = list(emulator.population.ids()[:80])
    evidence = Evidence(emulator, s3, ids, versioned=False)
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", output, "--verify-evidence").code == 0
    report = read_report(output)
    stored_refs = report["reference_evidence"] == "present"
    assert stored_refs.sum() > 5
    clean = run_cli("verify", output, "--evidence")
    assert clean.code == 0, clean.stderr
    assert "all still in place" in clean.stdout

    changed, deleted = list(report.index[stored_refs][:2])
    evidence.overwrite(str(report.loc[changed, "reference_s3_name"]))
    evidence.delete(str(report.loc[deleted, "reference_s3_name"]))
    ran = run_cli("verify", output, "--evidence")
    assert ran.code == 1
    assert "intact: " in ran.stdout  # the report itself was not edited
    assert "2 missing, changed or unreadable" in ran.stdout
    assert f"{changed} reference: s3://{EVIDENCE_BUCKET}/" in ran.stderr
    assert "changed (ETag" in ran.stderr
    assert f"{deleted} reference: s3://{EVIDENCE_BUCKET}/" in ran.stderr
    assert ": missing" in ran.stderr


def test_evidence_that_cannot_be_checked_leaves_the_session_unresolved(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = list(emulator.population.ids()[:40])
    with_images = [sid for sid in ids if stored(emulator, sid)]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # S3 down
    monkeypatch.setenv("LIVENESS_AUDIT_MAX_ATTEMPTS", "2")
    # every session reached: the S3 breaker would end the run early (test_s3_outage.py)
    monkeypatch.setenv("LIVENESS_AUDIT_ABORT_AFTER_FAILURES", "100000")
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output, "--verify-evidence")
    assert ran.code == 1
    report = read_report(output)
    assert set(report.index[report["error_code"] == "EvidenceUnverified"]) == set(with_images)
    assert (report.loc[with_images, "reference_evidence"].dropna() == "error").all()


def test_save_images_to_s3_encrypted_with_hashes(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    client = s3.client()
    client.create_bucket(Bucket="biometric-vault")
    ids = list(emulator.population.ids()[:60])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output, "--save-images", "s3://biometric-vault/img")
    assert ran.code == 0, ran.stderr
    report = read_report(output)
    saved = report["reference_image_path"].dropna()
    assert len(saved) > 10
    for sid, url in saved.items():
        assert isinstance(sid, str)
        assert url == f"s3://biometric-vault/img/{sid}-reference.jpg"
        key = url.removeprefix("s3://biometric-vault/")
        head = client.head_object(Bucket="biometric-vault", Key=key)
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentType"] == "image/jpeg"
        body = client.get_object(Bucket="biometric-vault", Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == report.loc[sid, "reference_bytes_sha256"]
    audits = [i for images in report["audit_images"] for i in images if i["image_path"]]
    assert audits
    assert all(i["image_path"].startswith("s3://biometric-vault/img/") for i in audits)
    # the report itself holds no image bytes
    assert b"\xff\xd8\xff\xe0" not in output.read_bytes()
    assert io.BytesIO(output.read_bytes()).read(4) == b"PAR1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("s3://A_B/img", "invalid setting 'save_images' (from --save-images)"),
        ("s3://", "invalid setting 'save_images'"),
    ],
)
def test_bad_image_location_is_a_usage_error(
    emulator: EmulatorThread, tmp_path: Path, value: str, message: str
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:3]))
    ran = run_cli("run", source, "--output", tmp_path / "r.parquet", "--save-images", value)
    assert ran.code == 2
    assert message in ran.stderr
    assert emulator.stats()["requests"] == 0
