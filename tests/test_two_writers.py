"""Two writers, one S3 report: conditional uploads and a re-merge on a lost race.

Two runs (two hosts: each its own work directory) audit disjoint halves of an input into
the same S3 key at once, in one event loop. Both read the key before either uploads, so
one of them loses the race (``If-None-Match`` / ``If-Match``), downloads the other's
report, merges it and uploads again: the report holds every session's answer.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pandas as pd
import pytest

from batch.config import load_settings
from batch.emulator import EmulatorThread, write_input
from batch.logs import LOGGER
from batch.model import RunSummary
from batch.run.audit import AuditRun
from batch.store.locations import S3Url
from tests.helpers import assert_exactly_as_served
from tests.s3server import MotoServer

BUCKET = "audits"
REPORT = S3Url(BUCKET, "liveness/part.parquet")


def read_s3_report(s3: MotoServer, tmp_path: Path) -> pd.DataFrame:
    body = s3.client().get_object(Bucket=BUCKET, Key=REPORT.key)["Body"].read()
    copy = tmp_path / "downloaded.parquet"
    copy.write_bytes(body)
    return pd.read_parquet(copy).set_index("session_id")


async def both(runs: list[AuditRun]) -> list[RunSummary]:
    return list(await asyncio.gather(*(run.run() for run in runs)))


def test_two_concurrent_runs_into_one_s3_report_keep_every_answer(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    emulator.configure(latency=0.01)  # the two fetches overlap: both read before either writes
    ids = list(emulator.population.ids()[:80])
    halves = [ids[:40], ids[40:]]
    runs = []
    for n, half in enumerate(halves):
        source = tmp_path / f"half-{n}.csv"
        write_input(source, half)
        settings = load_settings(flags={"concurrency": 2, "work_dir": tmp_path / f"host-{n}"})
        runs.append(AuditRun(source, REPORT, settings))

    with caplog.at_level(logging.INFO, logger=LOGGER):
        summaries = asyncio.run(both(runs))

    assert all(summary.publish_error is None for summary in summaries)
    report = read_s3_report(s3, tmp_path)
    assert sorted(report.index) == sorted(ids)
    assert_exactly_as_served(report, emulator, ids)
    assert "merging its answers" in caplog.text  # one of them lost the race, and merged


def test_a_rerun_over_one_half_keeps_the_other_halfs_answers_in_s3(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket=BUCKET)
    ids = list(emulator.population.ids()[:40])
    for n, half in enumerate([ids[:20], ids[20:]]):
        source = tmp_path / f"half-{n}.csv"
        write_input(source, half)
        settings = load_settings(flags={"work_dir": tmp_path / f"host-{n}"})
        summary = asyncio.run(AuditRun(source, REPORT, settings).run())
        assert summary.publish_error is None
    report = read_s3_report(s3, tmp_path)
    assert sorted(report.index) == sorted(ids)
    assert_exactly_as_served(report, emulator, ids)
