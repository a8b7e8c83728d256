"""Reports people open stay inert: hostile values in a report run no script in the HTML
page (checked in headless Chromium) and no formula in the CSV or XLSX."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq

from batch.emulator import EmulatorThread, write_input
from batch.reports import html
from batch.reports.html import s3_link, valid_bucket, valid_key
from batch.store.report import METADATA_KEY
from tests.helpers import chromium, run_cli

BREAK_OUT = 'x"><img src=x onerror="document.title=\'pwned\'">'
SCRIPT = "<script>document.title='pwned'</script>"
JS_URL = "javascript:alert(1)"


class Elements(HTMLParser):
    """Every element of a page, with its attributes, as a browser's DOM dump shows it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def hostile_report(emulator: EmulatorThread, tmp_path: Path) -> Path:
    """A real report whose values were then replaced by an attacker's."""
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:40]))
    report = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", report).code == 0
    table = pq.read_table(report)
    rows: list[dict[str, Any]] = table.to_pylist()
    payloads = [BREAK_OUT, SCRIPT, JS_URL]
    for i, row in enumerate(rows[:9]):
        payload = payloads[i % 3]
        row["session_id"] = f"{payload}-{i}"
        row["status"] = payload if i == 0 else row["status"]
        row["error_code"] = payload
        row["error_message"] = payload
        row["reference_s3_bucket"] = payload if i < 3 else "evidence-bucket"
        row["reference_s3_name"] = payload
        row["audit_images"] = [
            {**(image or {}), "s3_bucket": payload, "s3_name": payload}
            for image in row["audit_images"] or [{}]
        ]
    metadata = dict(pq.read_metadata(report).metadata or {})
    provenance = json.loads(metadata[METADATA_KEY])
    provenance["input_path"] = BREAK_OUT
    provenance["tool_version"] = SCRIPT
    metadata[METADATA_KEY] = json.dumps(provenance).encode()
    hostile = pa.Table.from_pylist(rows, schema=table.schema).replace_schema_metadata(metadata)
    pq.write_table(hostile, report)
    return report


def test_a_hostile_report_runs_no_script_in_the_html_page(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    report = hostile_report(emulator, tmp_path)
    page = tmp_path / "summary.html"
    ran = run_cli("summarize", report, "--html", page)
    assert ran.code == 0, ran.stderr
    text = page.read_text()
    assert "Content-Security-Policy" in text
    assert "default-src 'none'" in text

    dom = chromium(tmp_path, "--dump-dom", page.as_uri())

    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    assert title is not None
    assert title.group(1).startswith("Liveness audit")
    assert "pwned" not in title.group(1)
    elements = Elements()
    elements.feed(dom)
    tags = [tag for tag, _ in elements.found]
    assert tags.count("script") == 1  # the page's own (sort and filter), allowed by its hash
    own = (Path(html.__file__).parent / "templates" / "tables.js").read_text()
    assert f"<script>{own}</script>" in text
    policy = re.search(r"script-src ([^;]*);", text)
    assert policy is not None
    assert policy.group(1).startswith("'sha256-")
    assert "unsafe" not in policy.group(1)
    images = [attrs for tag, attrs in elements.found if tag == "img"]
    assert len(images) == 2
    assert all("night" in (attrs.get("alt") or "") for attrs in images)  # what each shows
    assert all((attrs.get("src") or "").startswith("data:image/png") for attrs in images)
    handlers = [name for _, attrs in elements.found for name in attrs if name.startswith("on")]
    assert handlers == []
    hrefs = [attrs.get("href") or "" for tag, attrs in elements.found if tag == "a"]
    assert hrefs
    assert all(href.startswith("https://s3.console.aws.amazon.com/s3/object/") for href in hrefs)
    # the hostile values are there, as text
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    # a valid bucket with a hostile but valid key is still a (quoted) console link
    assert (
        'href="https://s3.console.aws.amazon.com/s3/object/evidence-bucket?prefix=%3Cscript' in dom
    )
    # the page keeps its facts
    assert re.search(r'id="sessions"[^>]*>40<', dom)


def test_s3_names_that_break_the_rules_are_text_not_links() -> None:
    assert valid_bucket("evidence-bucket")
    assert valid_bucket("a.b-c")
    for bucket in ("ab", "A_B", "a..b", "192.168.1.1", "-ab", "a" * 64, BREAK_OUT, None):
        assert not valid_bucket(bucket), bucket
    assert valid_key("faces/ref.jpg")
    assert valid_key(SCRIPT)  # odd, but a legal key: linked, quoted
    for key in ("", "a\x00b", "line\nbreak", "é" * 513, 7):
        assert not valid_key(key), key
    link = s3_link("evidence-bucket", "a b/c&d.jpg")
    assert link is not None
    assert link.href == (
        "https://s3.console.aws.amazon.com/s3/object/evidence-bucket?prefix=a%20b%2Fc%26d.jpg"
    )
    assert link.text == "s3://evidence-bucket/a b/c&d.jpg"
    shown = s3_link(BREAK_OUT, "k")
    assert shown is not None
    assert shown.href is None
    assert s3_link(None, "k") is None


FORMULA = '=HYPERLINK("http://evil","x")'.lower()  # the reader lowercases session IDs


def test_formula_cells_are_text_in_csv_and_xlsx(emulator: EmulatorThread, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    write_input(source, [*emulator.population.ids()[:5], FORMULA, "+1+1", "@sum(a1)"])
    report = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", report).code == 0
    flat_csv, flat_xlsx = tmp_path / "flat.csv", tmp_path / "flat.xlsx"
    ran = run_cli("summarize", report, "--csv", flat_csv, "--xlsx", flat_xlsx)
    assert ran.code == 0, ran.stderr

    with flat_csv.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [row["session_id"] for row in rows]
    assert "'" + FORMULA in ids
    assert "'+1+1" in ids
    assert "'@sum(a1)" in ids
    assert not any(i.startswith(("=", "+", "-", "@")) for i in ids)
    assert all(row["confidence"] == "" or float(row["confidence"]) >= 0 for row in rows)

    sheet = openpyxl.load_workbook(flat_xlsx).active
    assert sheet is not None
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert all(cell.data_type != "f" for cell in cells)
    header = [cell.value for cell in next(sheet.iter_rows(max_row=1))]
    column = header.index("session_id")
    values = [row[column].value for row in sheet.iter_rows(min_row=2)]
    assert FORMULA in values  # kept as written, as text
    formula_cell = next(
        row[column] for row in sheet.iter_rows(min_row=2) if row[column].value == FORMULA
    )
    assert formula_cell.data_type == "s"
    assert formula_cell.quotePrefix
    numbers = [row[header.index("attempts")].value for row in sheet.iter_rows(min_row=2)]
    assert all(isinstance(n, int) for n in numbers)
