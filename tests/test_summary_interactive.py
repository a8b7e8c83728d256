"""The HTML page analysts use, in headless Chromium: sort by clicking, filter by typing.

Playwright for Python drives Debian's chromium (``executable_path``), so nothing is
downloaded: ``playwright install`` is never needed, and the test runs offline.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, sync_playwright

from batch.emulator import EmulatorThread, write_input
from batch.emulator.population import planted_disagreements
from tests.helpers import CHROMIUM_FLAGS, read_report, run_cli
from tests.test_summary import expected_by_challenge

RECONCILE = ("--keep-columns", "customer_ref", "--app-decision-column", "app_decision")
PAYLOAD = "<img src=x onerror=\"document.title='pwned'\">"


@contextmanager
def open_page(page_file: Path) -> Iterator[tuple[Page, list[str]]]:
    """``page_file`` in headless Chromium, and what its console said.

    Opened after the CLI has run: Playwright's sync API keeps an event loop running in
    this thread while the browser is open, and the CLI starts its own.
    """
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: ./scripts/test.sh installs Debian's package")
    flags = [flag for flag in CHROMIUM_FLAGS if flag != "--headless"]  # Playwright's own
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=flags)
        page = browser.new_page()
        said: list[str] = []
        page.on("console", lambda message: said.append(message.text))
        page.on("pageerror", lambda error: said.append(str(error)))
        page.goto(page_file.as_uri())
        try:
            yield page, said
        finally:
            browser.close()


def shown(page: Page, table: str, column: int) -> list[str]:
    """The text of ``column`` in the rows of ``table`` the page shows, in order."""
    texts = page.eval_on_selector_all(
        f"#{table} tbody tr:not([hidden])",
        f"rows => rows.map(r => r.cells[{column}].textContent.trim())",
    )
    return [str(text) for text in texts]


@pytest.fixture
def audited(emulator: EmulatorThread, tmp_path: Path) -> tuple[Path, pd.DataFrame, frozenset[str]]:
    ids = list(emulator.population.ids()[:500])
    source = tmp_path / "in.csv"
    write_input(source, ids, reconcile_with=emulator.population)
    report = tmp_path / "report.parquet"
    assert run_cli("run", source, "-o", report, *RECONCILE).code == 0
    page = tmp_path / "summary.html"
    ran = run_cli("summarize", report, "--html", page)
    assert ran.code == 0, ran.stderr
    return page, read_report(report), planted_disagreements(emulator.population, ids)


def test_disagreements_come_first_by_direction_with_the_customer_reference(
    audited: tuple[Path, pd.DataFrame, frozenset[str]],
) -> None:
    page_file, rows, planted = audited
    with open_page(page_file) as (page, said):
        tables = page.eval_on_selector_all("table.interactive", "tables => tables.map(t => t.id)")
        directions = [t for t in tables if t.startswith("disagreements-")]
        assert tables[: len(directions)] == directions  # before the other lists
        listed = [sid for table in directions for sid in shown(page, table, 0)]
        assert sorted(listed) == sorted(planted)
        first = shown(page, directions[0], 0)
        assert set(rows.loc[first, "app_decision"]) == {"pass"}  # a spoof let through, first
        assert set(rows.loc[first, "service_decision"]) == {"fail"}
        assert (page.text_content("#direction-1") or "").startswith("app passed, service failed")
        customers = [c for table in directions for c in shown(page, table, 1)]
        assert sorted(customers) == sorted(rows.loc[list(planted), "customer_ref"])

        one = first[0]
        page.fill(f"#{directions[0]}-filter", str(rows.loc[one, "customer_ref"]))
        assert shown(page, directions[0], 0) == [one]
        assert page.text_content(f"#{directions[0]}-range") == "1\u20131 of 1"
        assert not [s for s in said if "Content Security Policy" in s]  # the script's hash held


def test_clicking_a_header_sorts_and_clicking_again_reverses(
    audited: tuple[Path, pd.DataFrame, frozenset[str]],
) -> None:
    page_file, _, _ = audited
    with open_page(page_file) as (page, _):
        confidence = 3  # session, customer_ref, status, confidence, ...

        page.click("#look thead th:nth-child(4)")
        up = [float(v) if v else float("-inf") for v in shown(page, "look", confidence)]
        assert up == sorted(up)

        page.click("#look thead th:nth-child(4)")
        down = [float(v) if v else float("-inf") for v in shown(page, "look", confidence)]
        assert down == sorted(down, reverse=True)
        assert down[0] > up[0]  # the other end of the list: sessions with a confidence
        assert page.get_attribute("#look thead th:nth-child(4)", "aria-sort") == "descending"

        page.click("#look thead th:nth-child(1)")
        sessions = shown(page, "look", 0)
        assert sessions == sorted(sessions)
        assert len(sessions) == 100  # one page
        page.click("#look thead th:nth-child(1)")
        backwards = shown(page, "look", 0)
        assert backwards == sorted(backwards, reverse=True)
        assert backwards[0] > sessions[-1]  # the last page's end, not this page reversed


def test_typing_a_filter_shows_only_the_matching_rows(
    audited: tuple[Path, pd.DataFrame, frozenset[str]],
) -> None:
    page_file, rows, planted = audited
    with open_page(page_file) as (page, _):
        total = page.text_content("#look-range")

        page.fill("#look-filter", "status:expired")
        expired = shown(page, "look", 2)
        assert expired
        assert set(expired) == {"EXPIRED"}
        assert len(expired) == int((rows["status"] == "EXPIRED").sum())
        assert page.text_content("#look-range") == f"1\u2013{len(expired)} of {len(expired)}"

        page.fill("#look-filter", "detail:decision")
        assert sorted(shown(page, "look", 0)) == sorted(planted)

        page.fill("#look-filter", "")
        assert page.text_content("#look-range") == total


def test_hostile_kept_values_stay_text_when_sorted_and_filtered(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = [s for s in emulator.population.ids()[:60] if emulator.population.status(s) == "FAILED"]
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["session_id", "customer_ref", "app_decision"])
        out.writerows([sid, f"{PAYLOAD}{i}", "pass"] for i, sid in enumerate(ids))
    report = tmp_path / "report.parquet"
    assert run_cli("run", source, "-o", report, *RECONCILE).code == 0
    page_file = tmp_path / "summary.html"
    assert run_cli("summarize", report, "--html", page_file).code == 0

    with open_page(page_file) as (page, _):
        page.click("#disagreements-1 thead th:nth-child(2)")
        page.fill("#disagreements-1-filter", "onerror")

        assert len(shown(page, "disagreements-1", 1)) == len(ids)
        assert all(value.startswith(PAYLOAD) for value in shown(page, "disagreements-1", 1))
        assert page.title().startswith("Liveness audit")
        assert page.eval_on_selector_all("#disagreements-1 img", "images => images.length") == 0


def test_pending_sessions_are_counted_apart_and_listed_as_needing_a_look(
    audited: tuple[Path, pd.DataFrame, frozenset[str]],
) -> None:
    page_file, rows, _ = audited
    pending = rows[rows["status"].isin(["CREATED", "IN_PROGRESS"])]
    assert len(pending) > 0
    with open_page(page_file) as (page, _):
        assert page.text_content("#headline-pending") == str(len(pending))
        page.fill("#look-filter", "reason:pending")
        listed = dict(zip(shown(page, "look", 0), shown(page, "look", 2), strict=True))
        assert set(listed) == set(pending.index)
        assert set(listed.values()) == {"CREATED", "IN_PROGRESS"}
        page.fill("#look-filter", "status:in_progress")
        assert sorted(shown(page, "look", 0)) == sorted(
            pending.index[pending["status"] == "IN_PROGRESS"]
        )


def test_the_page_splits_pass_and_fail_by_challenge_type_as_a_groupby_does(
    audited: tuple[Path, pd.DataFrame, frozenset[str]],
) -> None:
    page_file, rows, _ = audited
    with open_page(page_file) as (page, _):
        cells = page.eval_on_selector_all(
            "#challenges tbody tr",
            "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))",
        )
    assert {row[0]: row[1:] for row in cells} == expected_by_challenge(rows, 80)
