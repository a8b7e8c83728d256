"""``liveness-audit summarize`` on reports made by real runs against the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch.emulator import EmulatorThread, write_input
from batch.reports.summary import NO_CHALLENGE
from tests.helpers import run_cli

PENDING = ("CREATED", "IN_PROGRESS")


@pytest.fixture
def reports(emulator: EmulatorThread, tmp_path: Path) -> list[Path]:
    """Two nights in date= partitions, the later night written first (same run day)."""
    made = {}
    for night, count in (("2026-11-23", 200), ("2026-11-22", 120)):
        source = tmp_path / f"{night}.csv"
        write_input(source, [*emulator.population.ids()[:count], "not-an-id"])
        output = tmp_path / "reports" / f"date={night}" / "liveness.parquet"
        output.parent.mkdir(parents=True)
        assert run_cli("run", source, "--output", output).code == 0
        made[night] = output
    return [made["2026-11-22"], made["2026-11-23"]]


def table_rows(out: str, title: str) -> list[list[str]]:
    """The cells of the rows of the terminal table titled ``title``."""
    lines = out.split(title, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("─"))
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def outcomes(df: pd.DataFrame, threshold: float) -> dict[str, int]:
    status = df["status"]
    passed = int(((status == "SUCCEEDED") & (df["confidence"] >= threshold)).sum())
    return {
        "pass": passed,
        "fail": int(status.isin(["SUCCEEDED", "FAILED"]).sum()) - passed,
        "pending": int(status.isin(PENDING).sum()),
        "expired": int((status == "EXPIRED").sum()),
        "error": int(status.isna().sum()),
    }


def test_the_terminal_summary_shows_every_outcome_and_they_add_up_to_the_sessions(
    reports: list[Path],
) -> None:
    ran = run_cli("summarize", reports[-1], "--threshold", "75")
    assert ran.code == 0, ran.stderr
    df = pd.read_parquet(reports[-1])
    shown = {row[0]: int(row[1]) for row in table_rows(ran.stdout, "Outcomes, night 2026-11-23")}
    want = outcomes(df, 75)
    assert {k: shown[k] for k in want} == want
    assert sum(want.values()) == len(df)  # the invalid cell is an error, not lost
    assert want["pending"] > 0
    assert want["expired"] > 0
    assert want["error"] == 1
    statuses = dict(table_rows(ran.stdout, "Sessions by status, night 2026-11-23"))
    for status, count in df["status"].value_counts().items():
        assert statuses[str(status)] == str(count)
    assert statuses["(no status)"] == "1"
    median = df["confidence"].dropna().quantile(0.5)
    assert f"{median:.2f}" in ran.stdout
    assert "InvalidSessionId" in ran.stdout
    assert "Trend by night" not in ran.stdout


def expected_by_challenge(df: pd.DataFrame, threshold: float) -> dict[str, list[str]]:
    """Pass, fail and pass share by challenge type: a pandas groupby of the report."""
    finished = df[df["status"].isin(["SUCCEEDED", "FAILED"])].copy()
    finished["passed"] = (finished["status"] == "SUCCEEDED") & (finished["confidence"] >= threshold)
    kind = finished["challenge_type"].astype(object).fillna(NO_CHALLENGE)
    grouped = finished.groupby(kind)["passed"].agg(["sum", "count"])
    return {
        str(name): [
            str(int(r["sum"])),
            str(int(r["count"] - r["sum"])),
            f"{100 * r['sum'] / r['count']:.1f}%",
        ]
        for name, r in grouped.iterrows()
    }


def test_pass_fail_by_challenge_type_equals_a_groupby_of_the_report(reports: list[Path]) -> None:
    ran = run_cli("summarize", reports[-1], "--threshold", "75")
    assert ran.code == 0, ran.stderr
    df = pd.read_parquet(reports[-1])
    rows = table_rows(ran.stdout, "Pass/fail by challenge type, night 2026-11-23")
    shown = {row[0]: row[1:] for row in rows}
    expected = expected_by_challenge(df, 75)
    assert set(expected) == {"FaceMovementAndLightChallenge", "FaceMovementChallenge"}
    assert shown == expected


def test_a_folder_or_a_glob_of_nights_shows_one_trend_row_per_partition_in_date_order(
    reports: list[Path], tmp_path: Path
) -> None:
    sizes = [len(pd.read_parquet(report)) for report in reports]
    assert sizes == [121, 201]
    for given in (str(tmp_path / "reports"), f"{tmp_path}/reports/*/liveness.parquet"):
        ran = run_cli("summarize", given)
        assert ran.code == 0, ran.stderr
        rows = table_rows(ran.stdout, "Trend by night")
        assert [row[0] for row in rows] == ["2026-11-22", "2026-11-23"]  # not the run dates
        assert [int(row[1]) for row in rows] == sizes
        for row, report in zip(rows, reports, strict=True):
            night = pd.read_parquet(report)
            assert int(row[4]) == int(night["status"].isin(PENDING).sum())
        assert "Outcomes, night 2026-11-23" in ran.stdout  # the details name their night


def test_the_terminal_summary_fits_80_columns_in_a_pipe_with_numbers_whole(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:400])
    source = tmp_path / "in.csv"
    write_input(source, ids, reconcile_with=emulator.population)
    report = tmp_path / "report.parquet"
    reconcile = ("--keep-columns", "customer_ref", "--app-decision-column", "app_decision")
    assert run_cli("run", source, "-o", report, *reconcile).code == 0
    ran = run_cli("summarize", report)  # CliRunner's stdout is a pipe, not a terminal
    assert ran.code == 0, ran.stderr
    assert max(len(line) for line in ran.stdout.splitlines()) <= 80
    df = pd.read_parquet(report)
    wrong = df[df["agrees"] == False]  # noqa: E712  # a nullable column
    passed_failed = wrong[wrong["app_decision"] == "pass"]
    title = f"app passed, service failed: {len(passed_failed)}"
    rows = table_rows(ran.stdout, title)
    assert len(rows) == min(10, len(passed_failed)) > 0
    for session, customer, confidence in rows:
        match = df[df["session_id"].str.startswith(session[:8])]
        assert session.endswith(match["session_id"].iloc[0][-4:])  # 1a2b3c4d…9e8f
        assert customer in set(match["customer_ref"])
        assert re.fullmatch(r"\d+\.\d\d", confidence)  # never split across lines


def test_the_threshold_comes_from_the_report_unless_one_is_given(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, emulator.population.ids()[:300])
    report = tmp_path / "report.parquet"
    assert run_cli("run", source, "-o", report, "--threshold", "60").code == 0
    df = pd.read_parquet(report)
    assert outcomes(df, 60)["pass"] != outcomes(df, 80)["pass"]  # the threshold matters here

    own = run_cli("summarize", report)
    assert own.code == 0, own.stderr
    assert "threshold 60 from the report's run" in " ".join(own.stdout.split())
    started = json.loads(pq.read_metadata(report).metadata[b"liveness_audit"])["started_at"]
    assert own.stdout.startswith(f"Night {started[:10]} ")  # no date= partition: the run's date
    shown = {row[0]: int(row[1]) for row in table_rows(own.stdout, "Outcomes, night")}
    assert shown["pass"] == outcomes(df, 60)["pass"]

    given = run_cli("summarize", report, "--threshold", "90")
    shown = {row[0]: int(row[1]) for row in table_rows(given.stdout, "Outcomes, night")}
    assert shown["pass"] == outcomes(df, 90)["pass"]
    assert "threshold 90 from given (--threshold)" in " ".join(given.stdout.split())


def test_bad_report_paths_exit_2(tmp_path: Path) -> None:
    ran = run_cli("summarize", tmp_path / "nothing-here.parquet")
    assert ran.code == 2
    assert "no report found" in ran.stderr
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    bad = run_cli("summarize", junk)
    assert bad.code == 2
    assert "not a liveness-audit report" in bad.stderr
    assert "Traceback" not in bad.stderr
