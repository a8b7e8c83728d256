"""Sessions that disappear while settling, and answers botocore cannot read (issue 20, 7-8).

Both through the real CLI and the real aioboto3 client against the emulator: ``vanish``
makes a session answer ``SessionNotFoundException`` from then on, ``bad_bytes`` /
``bad_audits`` are 200 bodies botocore's parser raises on, ``bad_confidence`` is a body
with ``Confidence`` 150.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.emulator import EmulatorThread, write_input
from tests.helpers import read_report, run_cli


def _succeeded(emulator: EmulatorThread, n: int) -> list[str]:
    population = emulator.population
    return [s for s in population.ids() if population.status(s) == "SUCCEEDED"][:n]


def test_a_session_gone_while_settling_keeps_its_last_status_marked_gone_and_a_rerun_exits_0(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(lifetime=600.0, expire_unfinished=300.0)
    gone = emulator.create_sessions(3, start_after=0.0, fate="EXPIRED")  # IN_PROGRESS
    for sid in gone:
        emulator.script(sid, ["pass", "vanish"])
    source = tmp_path / "in.csv"
    write_input(source, gone)
    output = tmp_path / "report.parquet"
    args = ("run", source, "--output", output, "--settle-interval", "0.2", "--no-progress")

    ran = run_cli(*args, "--settle", "4s")

    assert ran.code == 0, ran.stderr
    report = read_report(output)
    assert (report.loc[gone, "status"] == "IN_PROGRESS").all()  # the last status seen
    assert (report.loc[gone, "error_code"] == "SessionGone").all()
    assert report.loc[gone, "checked_at"].notna().all()
    asked = emulator.stats()["by_session"]
    assert [asked[sid] for sid in gone] == [2, 2, 2]  # settling ended at the first not-found
    assert (report.loc[gone, "checks"] == 2).all()

    again = run_cli(*args, "--settle", "4s")

    assert again.code == 0, again.stderr
    assert [emulator.stats()["by_session"][sid] for sid in gone] == [2, 2, 2]  # not asked


@pytest.mark.parametrize("fault", ["bad_bytes", "bad_audits", "bad_confidence"])
def test_an_answer_that_cannot_be_parsed_is_that_sessions_error_and_a_rerun_gets_it(
    emulator: EmulatorThread, tmp_path: Path, fault: str
) -> None:
    ids = _succeeded(emulator, 6)
    bad = ids[0]
    emulator.script(bad, [fault, fault])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    args = ("run", source, "--output", output, "--max-attempts", "2", "--no-progress")

    ran = run_cli(*args)

    assert ran.code == 1, ran.stderr  # unresolved: a rerun asks again
    assert "Traceback" not in ran.stderr
    report = read_report(output)
    assert report.loc[bad, "error_code"] == "MalformedResponse"
    assert report.loc[bad, "attempts"] == 2  # retried
    assert (report.loc[ids[1:], "status"] == "SUCCEEDED").all()  # the run went on
    assert report.loc[ids[1:], "error_code"].isna().all()

    again = run_cli(*args)

    assert again.code == 0, again.stderr
    fixed = read_report(output).loc[bad]
    assert fixed["status"] == "SUCCEEDED"
    assert 0 <= fixed["confidence"] <= 100
