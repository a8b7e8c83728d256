"""An S3 outage during --verify-evidence ends the run early, keeping the answers fetched.

Every evidence HEAD fails (a 500, or the connection dropped) through the fault-injecting
proxy in front of moto (tests/s3proxy.py): the run's S3 breaker stops it after about
``abort_after_failures`` failed calls, not after every session's every attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from batch.emulator import EmulatorThread, write_input
from tests.helpers import Evidence, read_report, run_cli, stored
from tests.s3proxy import S3Proxy
from tests.s3server import MotoServer

THRESHOLD = 6
SESSIONS = 120


@pytest.fixture
def proxy(s3: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Proxy]:
    with S3Proxy(s3.url) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
        yield server


@pytest.mark.parametrize("fault", ["500", "drop"])
def test_an_s3_outage_ends_the_run_early_and_keeps_the_answers_fetched(
    emulator: EmulatorThread,
    s3: MotoServer,
    proxy: S3Proxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    ids = [sid for sid in emulator.population.ids()[: 2 * SESSIONS] if stored(emulator, sid)]
    ids = ids[:SESSIONS]
    Evidence(emulator, s3, ids)
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    monkeypatch.setenv("LIVENESS_AUDIT_ABORT_AFTER_FAILURES", str(THRESHOLD))
    outage = proxy.fail("HEAD", "*", fault, times=None)

    ran = run_cli("run", source, "--output", output, "--verify-evidence")

    assert ran.code == 1, ran.stderr
    assert f"S3 failed {THRESHOLD} calls in a row (last: " in ran.stderr
    heads = sum(len(stored(emulator, sid)) for sid in ids)
    # ended after about the threshold (plus the HEADs in flight when it tripped): fewer
    # calls than stored images, where without a breaker each image spends 10 attempts
    assert THRESHOLD <= outage.served < heads
    report = read_report(output)
    assert sorted(report.index) == sorted(ids)  # every session, exactly once
    answered = report[report["status"].notna()]
    assert len(answered) >= 1
    assert (answered["error_code"] == "EvidenceUnverified").all()
    assert (answered["reference_evidence"] == "error").all()
    for sid, row in answered.iterrows():  # the answers fetched are kept as served
        served = emulator.population.response(str(sid))
        assert served is not None
        assert row["status"] == served["Status"]
    rest = report[report["status"].isna()]
    assert (rest["error_code"] == "NotAttempted").all()
    assert len(rest) > 0
    assert pd.Series(report["error_code"]).notna().all()  # nothing passes unverified
