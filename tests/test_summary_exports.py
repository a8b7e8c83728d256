"""The exports analysts open: CSV and XLSX of every session, and the files summarize writes.

Reports come from real runs against the emulator (reconciled, a customer column kept);
hostile values are put in the input the run keeps, as an application would export them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.emulator import EmulatorThread
from batch.emulator.population import planted_disagreements
from batch.reports import export, html
from tests.helpers import run_cli

ANALYST = [
    "date",
    "session_id",
    "customer_ref",
    "status",
    "confidence",
    "service_decision",
    "app_decision",
    "agrees",
    "disagreement",
    "reason",
]
CONTROL = "ref\x01\x08with\x1bcontrol"
FORMULA = "=1+1"
NIGHT = "2026-11-24"


@pytest.fixture
def report(emulator: EmulatorThread, tmp_path: Path) -> Path:
    ids = list(emulator.population.ids()[:80])
    planted = planted_disagreements(emulator.population, ids)
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["session_id", "customer_ref", "app_decision"])
        for i, sid in enumerate(ids):
            status = emulator.population.status(sid)
            decision = "pass" if status == "SUCCEEDED" else "fail"
            if sid in planted:
                decision = "fail" if decision == "pass" else "pass"
            ref = CONTROL if i == 0 else FORMULA if i == 1 else f"CUST-{i:04d}"
            out.writerow([sid, ref, decision])
    output = tmp_path / "reports" / f"date={NIGHT}" / "part.parquet"
    output.parent.mkdir(parents=True)
    keep = ("--keep-columns", "customer_ref", "--app-decision-column", "app_decision")
    assert run_cli("run", source, "-o", output, *keep).code == 0
    return output


@pytest.fixture
def umask_022() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def test_the_csv_puts_the_analyst_columns_first_with_iso_timestamps_in_utc(
    report: Path, tmp_path: Path
) -> None:
    flat = tmp_path / "all.csv"
    ran = run_cli("summarize", report, "--csv", flat)
    assert ran.code == 0, ran.stderr
    with flat.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[: len(ANALYST)] == ANALYST
    assert header.index("error_code") > header.index("reason")  # technical columns after
    kept = {r["session_id"]: r["fetched_at"] for r in pq.read_table(report).to_pylist()}
    assert len(rows) == len(kept)
    assert {row["date"] for row in rows} == {NIGHT}  # the partition, not the run's date
    for row in rows:
        fetched = kept[row["session_id"].lstrip("'")]
        if fetched is None:
            continue
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", row["fetched_at"])
        assert datetime.fromisoformat(row["fetched_at"]) == fetched
    reasons = {row["reason"] for row in rows}
    assert "fail, app agrees" in reasons  # out of the page's list by default, in the CSV
    assert "app passed, service failed" in reasons or "app failed, service passed" in reasons


def test_the_xlsx_has_a_frozen_header_a_filter_widths_number_formats_and_a_summary(
    report: Path, tmp_path: Path
) -> None:
    book_file = tmp_path / "all.xlsx"
    ran = run_cli("summarize", report, "--xlsx", book_file)
    assert ran.code == 0, ran.stderr
    book = openpyxl.load_workbook(book_file)
    assert book.sheetnames == ["sessions", "summary"]
    sheet = book["sessions"]
    header = [cell.value for cell in sheet[1]]
    assert header[: len(ANALYST)] == ANALYST
    sessions = len(pd.read_parquet(report))
    assert sheet.max_row == sessions + 1
    assert sheet.freeze_panes == "A2"
    last = openpyxl.utils.get_column_letter(len(header))
    assert sheet.auto_filter.ref == f"A1:{last}{sessions + 1}"
    assert sheet.column_dimensions["B"].width >= 36  # session IDs whole
    column = {name: i for i, name in enumerate(header)}
    scores = [row[column["confidence"]] for row in sheet.iter_rows(min_row=2)]
    assert any(c.value is not None for c in scores)
    assert all(c.number_format == "0.00" for c in scores if c.value is not None)
    times = [row[column["fetched_at"]] for row in sheet.iter_rows(min_row=2)]
    assert all(isinstance(c.value, datetime) for c in times if c.value is not None)
    assert {c.number_format for c in times if c.value is not None} == {'yyyy-mm-dd"T"hh:mm:ss"Z"'}
    summary = book["summary"]
    assert [c.value for c in summary[1]][:3] == ["night", "sessions", "pass"]
    assert [c.value for c in summary[2]][:2] == [NIGHT, sessions]


def test_control_characters_are_cleaned_and_formulas_stay_text(
    report: Path, tmp_path: Path
) -> None:
    flat, book_file = tmp_path / "all.csv", tmp_path / "all.xlsx"
    ran = run_cli("summarize", report, "--csv", flat, "--xlsx", book_file)
    assert ran.code == 0, ran.stderr
    with flat.open(encoding="utf-8", newline="") as f:
        refs = [row["customer_ref"] for row in csv.DictReader(f)]
    assert "refwithcontrol" in refs
    assert "'" + FORMULA in refs
    assert not any(re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", ref) for ref in refs)
    sheet = openpyxl.load_workbook(book_file)["sessions"]
    cells = [row[2] for row in sheet.iter_rows(min_row=2)]
    assert "refwithcontrol" in [c.value for c in cells]
    formula = next(c for c in cells if c.value == FORMULA)
    assert formula.data_type == "s"
    assert formula.quotePrefix
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def test_outputs_are_owner_only_whatever_the_umask_or_as_file_mode_says(
    report: Path, tmp_path: Path, umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = {
        "--csv": tmp_path / "a.csv",
        "--xlsx": tmp_path / "a.xlsx",
        "--html": tmp_path / "a.html",
    }
    ran = run_cli("summarize", report, *[a for pair in outputs.items() for a in pair])
    assert ran.code == 0, ran.stderr
    for path in outputs.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    monkeypatch.setenv("LIVENESS_AUDIT_FILE_MODE", "0640")
    again = run_cli("summarize", report, *[a for pair in outputs.items() for a in pair])
    assert again.code == 0, again.stderr
    for path in outputs.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # renamed, not left


@pytest.mark.parametrize("option", ["--csv", "--xlsx", "--html"])
def test_a_symlink_in_place_of_an_output_is_refused_and_its_target_untouched(
    report: Path, tmp_path: Path, option: str
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / f"out.{option.removeprefix('--')}"
    link.symlink_to(precious)
    ran = run_cli("summarize", report, option, link)
    assert ran.code == 2
    assert "symbolic link" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert precious.read_text() == "keep me"


def rewritten(report: Path, change: dict[str, Any]) -> Path:
    """The report with its first row's values replaced (provenance and manifest kept)."""
    table = pq.read_table(report)
    rows = table.to_pylist()
    rows[0].update(change)
    metadata = dict(pq.read_metadata(report).metadata or {})
    pq.write_table(
        pa.Table.from_pylist(rows, schema=table.schema).replace_schema_metadata(metadata), report
    )
    return report


def test_a_value_that_looks_like_mathtext_is_text_in_the_page_and_its_charts(
    report: Path, tmp_path: Path
) -> None:
    odd = "$\\foo{$"
    rewritten(report, {"status": odd, "error_code": odd})
    page = tmp_path / "page.html"
    ran = run_cli("summarize", report, "--html", page)
    assert ran.code == 0, ran.stderr
    assert odd in page.read_text()

    def draw(ax: Any) -> None:
        ax.set_title(odd)
        ax.bar([odd], [1])

    drawn = html._figure_png(draw)
    assert len(drawn) > 1000  # drawn as text: mathtext would raise on it


def test_the_page_and_summary_read_the_threshold_of_the_report(
    report: Path, tmp_path: Path
) -> None:
    metadata = dict(pq.read_metadata(report).metadata or {})
    provenance = json.loads(metadata[b"liveness_audit"])
    assert provenance["settings"]["threshold"] == 80
    page = tmp_path / "page.html"
    ran = run_cli("summarize", report, "--html", page, "--threshold", "55")
    assert ran.code == 0, ran.stderr
    text = page.read_text()
    assert 'id="threshold">55<' in text
    assert "55 (given (--threshold))" in text
    own = run_cli("summarize", report, "--html", page)
    assert own.code == 0, own.stderr
    assert 'id="threshold">80<' in page.read_text()
    assert "80 (the report&#39;s run (provenance))" in page.read_text()


def test_more_sessions_than_a_sheet_holds_is_a_clear_error_and_no_workbook(
    report: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "XLSX_ROWS", 10)  # a sheet of 10 rows: the 80 sessions overflow
    book_file = tmp_path / "all.xlsx"
    ran = run_cli("summarize", report, "--xlsx", book_file)
    assert ran.code == 2
    assert "do not fit a sheet (10 rows); use --csv" in ran.stderr
    assert not book_file.exists()
    assert not list(tmp_path.glob(".all.xlsx.*"))


@pytest.mark.parametrize("option", ["--csv", "--xlsx", "--html"])
def test_an_output_named_with_another_suffix_is_refused_before_any_work(
    report: Path, tmp_path: Path, option: str
) -> None:
    wrong = tmp_path / "flat.xls"
    ran = run_cli("summarize", report, option, wrong)
    assert ran.code == 2
    assert f"invalid {option}" in ran.stderr
    assert f"must end in .{option.removeprefix('--')}" in ran.stderr
    assert not wrong.exists()
