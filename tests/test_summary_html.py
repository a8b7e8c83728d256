"""The page that leads, in headless Chromium at desktop and phone width.

Three nights in ``date=`` partitions, written out of order on one day: the page must order
them by partition, lead with the latest night's headline figures (as the data says), page
its "need a look" list and filter it by numbers. Screenshots are kept in test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from batch.emulator import EmulatorThread
from tests.helpers import nightly_reports, run_cli
from tests.test_summary_interactive import RECONCILE, open_page, shown

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
NIGHTS = {"2026-11-22": 500, "2026-11-20": 300, "2026-11-21": 400}  # the order written
PENDING = ("CREATED", "IN_PROGRESS")


@pytest.fixture
def nights(emulator: EmulatorThread, tmp_path: Path) -> tuple[Path, dict[str, pd.DataFrame]]:
    frames = nightly_reports(emulator, tmp_path, NIGHTS, *RECONCILE)
    page = tmp_path / "summary.html"
    ran = run_cli("summarize", tmp_path / "reports", "--html", page)
    assert ran.code == 0, ran.stderr
    return page, frames


def needs_a_look(df: pd.DataFrame) -> pd.DataFrame:
    """What the page lists: every session with a reason but agreeing fails."""
    status, agrees = df["status"], df["agrees"]
    agreeing_fail = (agrees == True) & (df["service_decision"] == "fail")  # noqa: E712
    flagged = (
        (agrees == False)  # noqa: E712  # a nullable column
        | status.isna()
        | status.isin([*PENDING, "EXPIRED", "FAILED"])
        | ((status == "SUCCEEDED") & (df["confidence"] < 80))
        | df["app_decision_error"].notna()
    )
    return df[flagged & ~agreeing_fail]


def test_the_page_leads_with_the_latest_night_at_1400_and_390_px(
    nights: tuple[Path, dict[str, pd.DataFrame]],
) -> None:
    page_file, frames = nights
    latest, before = frames["2026-11-22"], frames["2026-11-21"]
    assert page_file.stat().st_size <= 2_000_000
    ARTIFACTS.mkdir(exist_ok=True)
    with open_page(page_file) as (page, said):
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.screenshot(path=str(ARTIFACTS / "summary-1400.png"), full_page=True)
        sections = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        assert sections[0] == "Headline, night 2026-11-22"
        assert sections[1].startswith("Disagreements with the application, night 2026-11-22")
        assert sections[2].startswith("Sessions that need a look, night 2026-11-22")

        passed = int(((latest["status"] == "SUCCEEDED") & (latest["confidence"] >= 80)).sum())
        results = int(latest["status"].isin(["SUCCEEDED", "FAILED"]).sum())
        want = {
            "pass": passed,
            "fail": results - passed,
            "pending": int(latest["status"].isin(PENDING).sum()),
            "expired": int((latest["status"] == "EXPIRED").sum()),
            "error": int(latest["status"].isna().sum()),
            "disagreements": int((latest["agrees"] == False).sum()),  # noqa: E712
        }
        for name, count in want.items():
            assert page.text_content(f"#headline-{name}") == str(count), name
            assert (
                page.text_content(f"#share-{name}")
                == f"{100 * count / len(latest):.1f}% of sessions"
            )
        expired_before = int((before["status"] == "EXPIRED").sum())
        change = page.text_content("#change-expired") or ""
        assert change.startswith(f"{want['expired'] - expired_before:+d} (")
        assert change.endswith("vs 2026-11-21")

        trend = page.eval_on_selector_all(
            "#trend tbody tr", "rows => rows.map(r => r.cells[1].textContent)"
        )
        nights_shown = shown(page, "trend", 0)
        assert nights_shown == ["2026-11-20", "2026-11-21", "2026-11-22"]  # by partition
        assert trend == [str(len(frames[n])) for n in nights_shown]
        alts = page.eval_on_selector_all("figure img", "images => images.map(i => i.alt)")
        assert len(alts) == 3
        assert all("night" in alt and any(c.isdigit() for c in alt) for alt in alts)
        footer = page.text_content("#runs") or ""
        assert "80 (the report's run (provenance))" in footer

        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "summary-390.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # no sideways scrolling of the page at phone width
        assert not said


def test_need_a_look_is_paged_and_filtered_by_numbers(
    nights: tuple[Path, dict[str, pd.DataFrame]],
) -> None:
    page_file, frames = nights
    look = needs_a_look(frames["2026-11-22"])
    assert len(look) > 100
    with open_page(page_file) as (page, _):
        assert page.text_content("#flagged") == str(len(look))
        assert page.text_content("#look-range") == f"1\u2013100 of {len(look)}"
        first = shown(page, "look", 0)
        assert len(first) == 100
        page.click("#look-next")
        second = shown(page, "look", 0)
        assert page.text_content("#look-range") == f"101\u2013{min(200, len(look))} of {len(look)}"
        assert not set(first) & set(second)
        assert page.is_disabled("#look-next") == (len(look) <= 200)

        page.fill("#look-filter", "confidence<80")
        low = look[look["confidence"] < 80]
        values = [float(v) for v in shown(page, "look", 3)]
        assert values
        assert all(v < 80 for v in values)
        assert page.text_content("#look-range") == f"1\u2013{min(100, len(low))} of {len(low)}"

        page.fill("#look-filter", "confidence >= 80 status:succeeded")
        high = look[(look["confidence"] >= 80) & (look["status"] == "SUCCEEDED")]
        assert (page.text_content("#look-range") or "").endswith(f"of {len(high)}")
        reasons = dict(
            zip(shown(page, "reasons", 0), map(int, shown(page, "reasons", 1)), strict=True)
        )
        assert sum(n for r, n in reasons.items() if "not listed" not in r) == len(look)
