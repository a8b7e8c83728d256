"""The report remembers (issue 11): reruns merge into it and never lose an answer.

End to end against the emulator (and moto behind the fault proxy for S3): a rerun after
the sessions expired, with and without ``--fresh``; local steps finished without asking
the service; a resume under changed settings; an ``--output`` template resumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.config import load_settings
from batch.emulator import EmulatorThread, write_input
from batch.logs import LOGGER
from batch.model import Manifest, Outcome
from batch.run.audit import AuditRun
from batch.store.checkpoint import journal_path
from batch.store.manifest import MANIFEST_KEY, JsonRowDigest, read_manifest
from batch.store.report import read_rows
from batch.store.row import Row
from tests.helpers import Evidence, assert_exactly_as_served, read_report, run_cli, stored
from tests.s3proxy import S3Proxy
from tests.s3server import MotoServer

RESULTS = ("SUCCEEDED", "FAILED")
PENDING = ("CREATED", "IN_PROGRESS")


def asked(emulator: EmulatorThread) -> dict[str, int]:
    """Requests the service received, per session."""
    return dict(emulator.stats()["by_session"])


def status_of(emulator: EmulatorThread, ids: list[str], statuses: tuple[str, ...]) -> list[str]:
    return [sid for sid in ids if emulator.population.status(sid) in statuses]


@pytest.fixture
def proxy(s3: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Proxy]:
    """moto behind the fault-injecting proxy; the tool is pointed at the proxy."""
    with S3Proxy(s3.url) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
        yield server


@pytest.mark.parametrize("fresh", [False, True])
def test_a_rerun_after_the_sessions_expired_keeps_every_result_with_its_images(
    emulator: EmulatorThread, tmp_path: Path, fresh: bool
) -> None:
    ids = list(emulator.population.ids()[:80])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    args = ("run", source, "--output", output, "--save-images", tmp_path / "images")
    assert run_cli(*args).code == 0
    first = read_report(output)
    results = status_of(emulator, ids, RESULTS)
    pending = status_of(emulator, ids, PENDING)
    assert results
    assert pending
    emulator.configure(expire_after=0)  # every session answers EXPIRED from now on
    before = asked(emulator)

    ran = run_cli(*args, *(["--fresh"] if fresh else []))

    assert ran.code == 0, ran.stderr
    report = read_report(output)
    assert len(report) == len(ids)
    assert_exactly_as_served(report, emulator, results)  # as first served, not EXPIRED
    for column in ("reference_image_path", "fetched_at", "reference_bytes_sha256"):
        pd.testing.assert_series_equal(report.loc[results, column], first.loc[results, column])
    after = asked(emulator)
    if fresh:  # asked again, and the less informative EXPIRED did not replace the result
        assert all(after[sid] == before[sid] + 1 for sid in results)
        assert (report.loc[results, "checks"] == 2).all()
    else:  # the rerun sent no request for a settled session
        assert all(after[sid] == before[sid] for sid in results)
        assert (report.loc[results, "checks"] == 1).all()
    # pending sessions were asked again: EXPIRED is more informative than IN_PROGRESS
    assert all(after[sid] == before[sid] + 1 for sid in pending)
    assert (report.loc[pending, "status"] == "EXPIRED").all()
    assert (report.loc[pending, "checked_at"] > first.loc[pending, "checked_at"]).all()


def test_a_rerun_over_another_input_keeps_the_sessions_of_the_first(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:40])
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_input(first, ids[:20])
    write_input(second, ids[20:])
    output = tmp_path / "report.parquet"
    assert run_cli("run", first, "--output", output).code == 0
    assert run_cli("run", second, "--output", output).code == 0
    report = read_report(output)
    assert sorted(report.index) == sorted(ids)
    assert_exactly_as_served(report, emulator, ids)


def inline_and_stored(emulator: EmulatorThread, ids: list[str]) -> tuple[str, str]:
    """A finished session with inline image bytes, and one with images stored in S3."""
    inline = next(
        sid
        for sid in ids
        if emulator.population.status(sid) in RESULTS
        and "Bytes" in ((emulator.population.response(sid) or {}).get("ReferenceImage") or {})
    )
    in_s3 = next(sid for sid in ids if len(stored(emulator, sid)) > 1)
    return inline, in_s3


def test_unverified_evidence_and_unsaved_images_are_finished_by_a_rerun_without_asking(
    emulator: EmulatorThread, s3: MotoServer, proxy: S3Proxy, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:60])
    inline, in_s3 = inline_and_stored(emulator, ids)
    Evidence(emulator, s3, ids)
    s3.client().create_bucket(Bucket="vault")
    refused_head = proxy.fail("HEAD", stored(emulator, in_s3)[0]["Name"], "403", times=None)
    refused_put = proxy.fail("PUT", f"img/{inline}-reference.jpg", "403", times=None)
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output, work = tmp_path / "report.parquet", tmp_path / "work"
    args: tuple[str | Path, ...] = ("run", source, "--output", output, "--work-dir", work)
    args = (*args, "--verify-evidence", "--save-images", "s3://vault/img")

    ran = run_cli(*args)

    assert ran.code == 1, ran.stderr  # unresolved: the run went on after the 403s
    assert refused_head.served >= 1
    assert refused_put.served == 2  # the fetching run tried the save once more
    report = read_report(output)
    assert report.loc[in_s3, "error_code"] == "EvidenceUnverified"
    assert report.loc[inline, "error_code"] == "ImageNotSaved"
    assert "kept for a rerun" in str(report.loc[inline, "error_message"])
    assert report["reference_image_path"].isna()[inline]
    assert report.loc[[inline, in_s3], "status"].isin(RESULTS).all()  # the answers are kept
    spooled = list((work / "spool").rglob("*.jpg"))
    kept = [p for p in spooled if p.name == f"{inline}-reference.jpg"]
    assert kept
    digest = hashlib.sha256(kept[0].read_bytes()).hexdigest()
    assert digest == report.loc[inline, "reference_bytes_sha256"]  # the bytes themselves
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in spooled)
    assert all(stat.S_IMODE(p.parent.stat().st_mode) == 0o700 for p in spooled)

    proxy.clear()
    before = asked(emulator)
    ran = run_cli(*args)

    assert ran.code == 0, ran.stderr
    after = asked(emulator)
    settled = status_of(emulator, ids, (*RESULTS, "EXPIRED"))
    assert inline in settled
    assert in_s3 in settled
    assert all(after[sid] == before[sid] for sid in settled)  # zero Rekognition calls
    report = read_report(output)
    assert report["error_code"].isna().all()
    assert report.loc[in_s3, "reference_evidence"] == "present"
    path = report.loc[inline, "reference_image_path"]
    assert path == f"s3://vault/img/{inline}-reference.jpg"
    assert s3.client().head_object(Bucket="vault", Key=f"img/{inline}-reference.jpg")
    assert not list((work / "spool").rglob("*.jpg")), "the spool copy is removed once saved"


def unfinished_run(
    emulator: EmulatorThread, tmp_path: Path, n: int = 30
) -> tuple[list[str], Path, Path]:
    """A run left unfinished (one session unresolved): its journal is kept."""
    ids = list(emulator.population.ids()[:n])
    emulator.script(ids[0], ["server_error"] * 2)
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", output, "--max-attempts", "2").code == 1
    assert journal_path(output).exists()
    return ids, source, output


@pytest.mark.parametrize(
    ("flag", "value", "setting"),
    [
        ("--endpoint-url", "http://127.0.0.1:9", "endpoint_url"),
        ("--region", "eu-west-1", "region"),
    ],
)
def test_a_resume_against_another_endpoint_or_region_is_refused(
    emulator: EmulatorThread, tmp_path: Path, flag: str, value: str, setting: str
) -> None:
    _, source, output = unfinished_run(emulator, tmp_path)
    before = emulator.stats()["requests"]
    ran = run_cli("run", source, "--output", output, flag, value)
    assert ran.code == 2
    assert f"another {setting}" in ran.stderr
    assert repr(value) in ran.stderr
    assert emulator.stats()["requests"] == before


def test_a_resume_with_verify_evidence_added_checks_the_replayed_answers(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    Evidence(emulator, s3, list(emulator.population.ids()[:30]))  # as the service wrote it
    ids, source, output = unfinished_run(emulator, tmp_path, 30)
    with_images = [sid for sid in ids if stored(emulator, sid)]
    assert with_images
    before = asked(emulator)

    ran = run_cli("run", source, "--output", output, "--verify-evidence")

    assert ran.code == 0, ran.stderr
    assert "without --verify-evidence" in ran.stderr
    report = read_report(output)
    assert (report.loc[with_images, "reference_evidence"].dropna() == "present").all()
    assert report.loc[with_images, "reference_evidence"].notna().any()
    after = asked(emulator)
    settled = status_of(emulator, ids[1:], (*RESULTS, "EXPIRED"))
    assert all(after[sid] == before[sid] for sid in settled)  # checked locally, not asked


def test_a_resume_with_save_images_added_says_the_bytes_were_not_kept(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids, source, output = unfinished_run(emulator, tmp_path)
    inline, _ = inline_and_stored(emulator, ids[1:])

    ran = run_cli("run", source, "--output", output, "--save-images", tmp_path / "images")

    assert ran.code == 1  # never mixed silently: those rows say what is missing
    report = read_report(output)
    assert report.loc[inline, "status"] in RESULTS
    assert report.loc[inline, "error_code"] == "ImageNotSaved"
    assert "were not kept" in str(report.loc[inline, "error_message"])


def test_an_output_template_is_resumed_by_the_same_command(
    emulator: EmulatorThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = list(emulator.population.ids()[:20])
    emulator.script(ids[0], ["server_error"] * 2)
    source = tmp_path / "in.csv"
    write_input(source, ids)
    template = str(tmp_path / "report-{time}.parquet")
    settings = load_settings(flags={"max_attempts": 2, "work_dir": tmp_path / "work"})
    # What the CLI does with the template at two moments: two renderings of it.
    early, late = tmp_path / "report-010000.parquet", tmp_path / "report-010001.parquet"

    first = asyncio.run(AuditRun(source, early, settings, template=template).run())
    assert first.unresolved == 1
    with caplog.at_level(logging.INFO, logger=LOGGER):
        second = asyncio.run(AuditRun(source, late, settings, template=template).run())

    assert second.report == str(early)
    assert "resuming the unfinished run" in caplog.text
    assert not late.exists()
    assert_exactly_as_served(read_report(early), emulator, ids)
    assert not journal_path(early).exists()
    # complete now: the next run of the template renders a new report
    third = asyncio.run(AuditRun(source, late, settings, template=template).run())
    assert third.report == str(late)


def test_a_row_turns_back_into_the_result_it_was_made_from(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:40])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", output, "--save-images", tmp_path / "i").code == 0
    rows = [row for row in read_rows(output) if row.status in RESULTS]
    assert rows
    for row in rows:
        result = row.result()
        assert result is not None
        outcome = Outcome(row.session_id, result, None, None, 1, row.fetched_at, True)
        made = Row.of(outcome, row.paths())
        assert made == row
        assert made.flat(extras=False) == row.flat(extras=False)
        assert row.extras == {"region": None}  # a column of this run's schema, not a base one


def write_signed_v1(table: pa.Table, path: Path) -> None:
    """``table`` at ``path`` as an older liveness-audit wrote it (``manifest/1``)."""
    metadata = dict(pq.read_metadata(path).metadata or {})
    digest = JsonRowDigest()
    digest.update(table)
    manifest = Manifest(
        rows=table.num_rows,
        input_sha256=read_manifest(path).input_sha256,
        rows_sha256=digest.hexdigest(),
        format="liveness-audit-manifest/1",
        digest="sha256 of canonical JSON lines",
    )
    metadata[MANIFEST_KEY] = manifest.to_json().encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_a_report_written_before_the_ledger_columns_is_read_with_them_empty(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:20])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", output).code == 0
    old = ("checks", "checked_at", "challenge_type", "challenge_version")
    table = pq.read_table(output).drop_columns(list(old))
    write_signed_v1(table, output)  # as the tool wrote reports then: manifest /1
    before = asked(emulator)

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 0, ran.stderr
    report = read_report(output)
    settled = status_of(emulator, ids, (*RESULTS, "EXPIRED"))
    assert all(asked(emulator)[sid] == before[sid] for sid in settled)
    assert (report.loc[settled, "checks"] == 1).all()  # from attempts
    assert report.loc[settled, "status"].notna().all()
