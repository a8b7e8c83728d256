"""What a run leaves behind and whom it resumes from (issue 20 item 10, issue 23 item 1).

A run that stops before its first answer leaves neither journal nor lock; a resume
compares the service actually used (the region the client resolves, the endpoint
normalised), and a journal of another service is merged on purpose with
``--merge-journal``, never moved away.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.emulator import EmulatorThread, write_input
from tests.helpers import read_report, run_cli, start_cli, wait_for_lines


def _with_one_unresolved(emulator: EmulatorThread, tmp_path: Path) -> tuple[Path, Path, str]:
    """An input of five sessions, the first failing its two attempts with 5xx (the journal
    is kept for a rerun)."""
    ids = list(emulator.population.ids()[:5])
    emulator.script(ids[0], ["server_error", "server_error"])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    return source, tmp_path / "report.parquet", ids[0]


def test_a_run_that_stops_before_its_first_answer_leaves_no_journal_and_no_lock(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    ids = list(emulator.population.ids()[:3])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 2
    assert "no AWS region" in ran.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # nothing left behind

    fixed = run_cli("run", source, "--output", output, "--region", "us-east-1")

    assert fixed.code == 0, fixed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "report.parquet"]


def test_a_resume_accepts_the_same_endpoint_spelled_with_a_trailing_slash(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source, output, bad = _with_one_unresolved(emulator, tmp_path)
    args = ("run", source, "--output", output, "--max-attempts", "2")

    first = run_cli(*args, "--endpoint-url", emulator.url.upper().replace("HTTP:", "http:") + "/")
    assert first.code == 1, first.stderr
    assert (tmp_path / "report.parquet.journal").exists()

    again = run_cli(*args)  # AWS_ENDPOINT_URL_REKOGNITION, no slash

    assert again.code == 0, again.stderr
    assert read_report(output).loc[bad, "status"] == emulator.population.status(bad)


def test_a_resume_accepts_the_region_of_the_config_file_and_of_aws_region_alike(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, output, bad = _with_one_unresolved(emulator, tmp_path)
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION")
    args = ("run", source, "--output", output, "--max-attempts", "2")

    first = run_cli(*args)  # the region from ~/.aws/config
    assert first.code == 1, first.stderr

    monkeypatch.setenv("AWS_REGION", "us-east-1")
    again = run_cli(*args)

    assert again.code == 0, again.stderr
    assert read_report(output).loc[bad, "status"] == emulator.population.status(bad)
    assert not (tmp_path / "report.parquet.journal").exists()  # complete: journal done


def test_a_journal_of_another_service_is_merged_with_merge_journal_and_never_moved(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(lifetime=600.0, expire_unfinished=300.0)
    done = emulator.create_sessions(3, start_after=0.0, finish_after=0.0, fate="SUCCEEDED")
    running = emulator.create_sessions(2, start_after=0.0, fate="EXPIRED")  # IN_PROGRESS
    source = tmp_path / "in.csv"
    write_input(source, done + running)
    output = tmp_path / "report.parquet"
    journal = tmp_path / "report.parquet.journal"
    proc = start_cli(
        "run",
        source,
        "--output",
        output,
        "--region",
        "us-east-1",
        "--settle",
        "10m",
        "--settle-interval",
        "30s",
    )
    try:
        wait_for_lines(journal, 5, proc)  # every first answer journaled, then killed
    finally:
        proc.kill()
        proc.communicate()
    args = ("run", source, "--output", output, "--settle", "0")

    refused = run_cli(*args, "--region", "us-west-2")

    assert refused.code == 2
    assert "--merge-journal" in refused.stderr
    assert "move" not in refused.stderr
    assert journal.exists()

    merged = run_cli(*args, "--region", "us-west-2", "--merge-journal", journal)

    assert merged.code == 0, merged.stderr
    report = read_report(output)
    assert (report.loc[done, "status"] == "SUCCEEDED").all()
    assert (report.loc[running, "status"] == "IN_PROGRESS").all()
    asked = emulator.stats()["by_session"]
    assert [asked[sid] for sid in done] == [1, 1, 1]  # the journaled answers were kept


def test_a_run_without_credentials_leaves_nothing_behind_either(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:3]))

    ran = run_cli("run", source, "--output", tmp_path / "report.parquet")

    assert ran.code == 3, ran.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
    assert emulator.stats()["requests"] == 0
