"""``liveness-audit summarize`` on reports made by real runs against the emulator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from batch.emulator import EmulatorThread, write_input
from batch.reports.summary import NO_CHALLENGE, challenge_split
from tests.helpers import run_cli

PENDING_ROW = "pending (not settled: a rerun asks again)"


@pytest.fixture
def reports(emulator: EmulatorThread, tmp_path: Path) -> list[Path]:
    made = []
    for night, count in (("2026-11-22", 120), ("2026-11-23", 200)):
        source = tmp_path / f"{night}.csv"
        write_input(source, [*emulator.population.ids()[:count], "not-an-id"])
        output = tmp_path / "reports" / night / "liveness.parquet"
        output.parent.mkdir(parents=True)
        assert run_cli("run", source, "--output", output).code == 0
        made.append(output)
    return made


def test_terminal_summary_shows_the_numbers_of_the_report(reports: list[Path]) -> None:
    ran = run_cli("summarize", reports[-1], "--threshold", "75")
    assert ran.code == 0, ran.stderr
    df = pd.read_parquet(reports[-1])
    out = ran.stdout
    for title in ("Sessions by status", "Pass/fail at confidence >= 75", "Errors by code"):
        assert title in out
    status_table = out.split("Sessions by status", 1)[1]
    for status, count in df["status"].value_counts().items():
        row = next(ln for ln in status_table.splitlines() if f"│ {status} " in ln)
        assert row.split("│")[2].strip() == str(count)
    passed = int(((df["status"] == "SUCCEEDED") & (df["confidence"] >= 75)).sum())
    line = next(ln for ln in out.splitlines() if "pass (SUCCEEDED" in ln)
    assert line.split("│")[2].strip() == str(passed)
    median = df["confidence"].dropna().quantile(0.5)
    assert f"{median:.2f}" in out
    assert "InvalidSessionId" in out
    assert "Trend by night" not in out


def table_rows(out: str, title: str) -> list[list[str]]:
    """The cells of the rows of the table titled ``title`` (up to the next table)."""
    rows = []
    for line in out.split(title, 1)[1].splitlines()[1:]:
        if not line.startswith(("│", "┏", "┃", "┡", "└")):
            break
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.split("│")[1:-1]])
    return rows


def trend_sessions(out: str) -> list[int]:
    """The sessions column of the "Trend by night" table: one row per night."""
    return [int(row[1]) for row in table_rows(out, "Trend by night")]


def test_pending_sessions_are_their_own_group_beside_pass_and_fail(
    reports: list[Path], tmp_path: Path
) -> None:
    ran = run_cli("summarize", reports[-1], "--threshold", "75")
    assert ran.code == 0, ran.stderr
    df = pd.read_parquet(reports[-1])
    pending = int(df["status"].isin(["CREATED", "IN_PROGRESS"]).sum())
    assert pending > 0  # the timeless emulator's population has them
    outcomes = dict(table_rows(ran.stdout, "Pass/fail at confidence >= 75"))
    assert outcomes[PENDING_ROW] == str(pending)
    finished = int(df["status"].isin(["SUCCEEDED", "FAILED"]).sum())
    assert (
        int(outcomes["pass (SUCCEEDED, at or above)"]) + int(outcomes["fail (FAILED, or below)"])
        == finished
    )

    trend = run_cli("summarize", tmp_path / "reports")
    assert trend.code == 0, trend.stderr
    rows = table_rows(trend.stdout, "Trend by night")
    for row, report in zip(rows, reports, strict=True):
        night = pd.read_parquet(report)
        assert row[4] == str(int(night["status"].isin(["CREATED", "IN_PROGRESS"]).sum()))


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
    rows = table_rows(ran.stdout, "Pass/fail by challenge type at confidence >= 75")
    shown = {row[0]: row[1:] for row in rows}
    expected = expected_by_challenge(df, 75)
    assert set(expected) == {"FaceMovementAndLightChallenge", "FaceMovementChallenge"}
    assert shown == expected


def test_results_without_a_challenge_are_split_last_and_old_reports_still_split() -> None:
    frame = pd.DataFrame(
        {
            "status": ["SUCCEEDED", "SUCCEEDED", "FAILED", "SUCCEEDED", "EXPIRED", "IN_PROGRESS"],
            "confidence": [95.0, 50.0, 10.0, 99.0, None, None],
            "challenge_type": ["FaceMovementChallenge", None, None, "A", None, None],
        }
    )
    split = challenge_split(frame, 80)
    assert [(s.challenge, s.passed, s.failed) for s in split] == [
        ("A", 1, 0),
        ("FaceMovementChallenge", 1, 0),
        (NO_CHALLENGE, 0, 2),
    ]
    old = challenge_split(frame.drop(columns=["challenge_type"]), 80)
    assert [(s.challenge, s.passed, s.failed) for s in old] == [(NO_CHALLENGE, 2, 2)]


def test_a_folder_or_a_glob_of_nights_shows_one_trend_row_per_night(
    reports: list[Path], tmp_path: Path
) -> None:
    nights = [len(pd.read_parquet(report)) for report in reports]
    assert nights == [121, 201]
    ran = run_cli("summarize", tmp_path / "reports")
    assert ran.code == 0, ran.stderr
    assert trend_sessions(ran.stdout) == nights
    glob = run_cli("summarize", f"{tmp_path}/reports/*/liveness.parquet")
    assert glob.code == 0, glob.stderr
    assert trend_sessions(glob.stdout) == nights


def test_flat_csv_and_xlsx_for_spreadsheets(reports: list[Path], tmp_path: Path) -> None:
    csv, xlsx = tmp_path / "flat.csv", tmp_path / "flat.xlsx"
    ran = run_cli("summarize", *map(str, reports), "--csv", csv, "--xlsx", xlsx)
    assert ran.code == 0, ran.stderr
    expected = sum(len(pd.read_parquet(r)) for r in reports)
    flat = pd.read_csv(csv)
    assert len(flat) == expected
    assert {"report", "session_id", "reference_bbox_left", "audit_0_bbox_left"} <= set(flat)
    assert {"challenge_type", "challenge_version"} <= set(flat)
    assert "audit_images" not in flat
    sheet = pd.read_excel(xlsx)
    assert len(sheet) == expected
    assert sheet["session_id"].tolist() == flat["session_id"].tolist()
    reported = pd.concat([pd.read_parquet(r) for r in reports], ignore_index=True)
    for frame in (flat, sheet):
        assert frame["challenge_type"].fillna("").tolist() == (
            reported["challenge_type"].fillna("").tolist()
        )
        assert frame["challenge_version"].astype(object).fillna("").map(str).tolist() == (
            reported["challenge_version"].fillna("").tolist()
        )
    wrong = run_cli("summarize", str(reports[0]), "--xlsx", tmp_path / "flat.xls")
    assert wrong.code == 2
    assert "invalid --xlsx" in wrong.stderr
    assert "must end in .xlsx" in wrong.stderr


def test_bad_report_paths_exit_2(tmp_path: Path) -> None:
    ran = run_cli("summarize", tmp_path / "nothing-here.parquet")
    assert ran.code == 2
    assert "no report found" in ran.stderr
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    bad = run_cli("summarize", junk)
    assert bad.code == 2
    assert "not a liveness-audit report" in bad.stderr


def test_html_of_several_nights_adds_the_trend_chart(reports: list[Path], tmp_path: Path) -> None:
    page = tmp_path / "trend.html"
    ran = run_cli("summarize", tmp_path / "reports", "--html", page)
    assert ran.code == 0, ran.stderr
    text = page.read_text()
    assert text.count('<img alt="chart"') == 3
    assert 'id="flagged"' in text
