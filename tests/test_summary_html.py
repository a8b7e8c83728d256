"""The HTML summary in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from batch.emulator import EmulatorThread, write_input
from tests.helpers import chromium, run_cli


def test_html_report_renders_with_the_numbers_of_the_parquet(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, [*emulator.population.ids()[:300], "not-an-id"])
    report = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", report).code == 0
    page = tmp_path / "summary.html"
    ran = run_cli("summarize", report, "--html", page, "--threshold", "80")
    assert ran.code == 0, ran.stderr
    text = page.read_text()
    assert 'src="http' not in text  # nothing loaded from the network: it opens offline
    assert "<link" not in text

    dom = chromium(tmp_path, "--dump-dom", page.as_uri())

    df = pd.read_parquet(report)

    def shown(element_id: str) -> int:
        match = re.search(rf'id="{element_id}"[^>]*>(\d+)<', dom)
        assert match, f"{element_id} not rendered"
        return int(match.group(1))

    assert shown("sessions") == len(df)
    passed = ((df["status"] == "SUCCEEDED") & (df["confidence"] >= 80)).sum()
    assert shown("passed") == passed
    assert shown("failed") == df["status"].isin(["SUCCEEDED", "FAILED"]).sum() - passed
    for status, count in df["status"].value_counts().items():
        assert shown(f"status-{status}") == count
    assert shown("pending") == df["status"].isin(["CREATED", "IN_PROGRESS"]).sum() > 0
    assert dom.count('<img alt="chart"') == 2

    screenshot = tmp_path / "summary.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1200,1600", page.as_uri())
    assert screenshot.stat().st_size > 10_000
