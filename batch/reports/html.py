"""The self-contained HTML page of ``liveness-audit summarize --html``: a page that leads.

In order: the latest night's headline figures (each with its share and its change against
the night before); the disagreements with the application by direction, "app passed,
service failed" (a spoof let through) first; the sessions that need a look, with their
reason and the count per reason (agreeing fails left out: they are in the CSV), paged in
the page with numeric filters (``confidence<50``); charts coloured by outcome with their
values, axis titles and alt text saying what they show; the trend table by night; and a
footer with the run details (threshold and where it came from, run ids, times, input
sha256, rows_sha256, tool version). Every section names the night it covers.

The page stays small at any volume: the facts are aggregates, lists are LIMITed queries
(:data:`LISTED` sessions at most, the page says how many there are in all).

Rendered from ``templates/summary.html.j2`` by Jinja2 with autoescaping, so every value
from a report is escaped. Links to S3 objects are built only for bucket names and keys
that follow S3's rules, with URL quoting. A Content-Security-Policy forbids every script
but the page's own (``templates/tables.js``: sort, filter, page), allowed by its SHA-256;
it reads and writes values with ``textContent`` only. Chart labels are drawn with
matplotlib's mathtext off, so a value like ``$\\foo{$`` is text.
"""

from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from batch.reports.engine import Reports
from batch.reports.summary import (
    AGREEING_FAIL,
    METRICS,
    OUTCOMES,
    Detail,
    Flagged,
    NightCounts,
    flagged,
)

__all__ = [
    "COLOURS",
    "LISTED",
    "MAX_BYTES",
    "S3Link",
    "render_html",
    "s3_link",
    "valid_bucket",
    "valid_key",
]

CONSOLE = "https://s3.console.aws.amazon.com/s3/object/"
LISTED = 1000  # sessions of a list embedded in the page, at most
MAX_BYTES = 2_000_000  # the page, at any volume
FOOTER_FILES = 200  # the latest reports named in the footer
COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "pending": "#f9a825",
    "expired": "#757575",
    "error": "#6a1b9a",
    "disagreements": "#ef6c00",
}

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MAX_KEY_BYTES = 1024

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("batch.reports", "templates"),
    autoescape=True,  # every value, whatever the template's name
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def valid_bucket(name: object) -> bool:
    """S3's bucket naming rules: 3-63 of ``[a-z0-9.-]``, no ``..``, not an IP address."""
    if not isinstance(name, str) or not _BUCKET.fullmatch(name) or ".." in name:
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


def valid_key(key: object) -> bool:
    """S3's key rules: 1-1024 bytes of UTF-8; no control characters (our rule for links)."""
    if not isinstance(key, str) or not key:
        return False
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        return False
    return size <= _MAX_KEY_BYTES and not any(unicodedata.category(c) == "Cc" for c in key)


@dataclass(frozen=True, slots=True)
class S3Link:
    """An S3 object as the page shows it: its ``s3://`` text, a console link if valid."""

    text: str
    href: str | None

    @property
    def label(self) -> str:
        """The object's name without its folders (the whole text is the link's title)."""
        return self.text.rsplit("/", 1)[-1] or self.text


def s3_link(bucket: object, key: object) -> S3Link | None:
    """The link to the object in the AWS console, or text only when a name is invalid."""
    if bucket is None or key is None:
        return None
    text = f"s3://{bucket}/{key}"
    if not (valid_bucket(bucket) and valid_key(key)):
        return S3Link(text, None)
    return S3Link(text, f"{CONSOLE}{quote(str(bucket), safe='')}?prefix={quote(str(key), safe='')}")


@dataclass(frozen=True, slots=True)
class Figure:
    """A headline figure: its count, share of the night, and change against the night before."""

    name: str
    count: int
    share: str
    change: str
    colour: str


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart as embedded PNG data, and the alt text saying what it shows."""

    png: str
    alt: str


@dataclass(frozen=True, slots=True)
class Listing:
    """A list of sessions: those shown, how many there are in all."""

    rows: tuple[dict[str, Any], ...]
    total: int


def _share(count: int, total: int) -> str:
    return f"{100 * count / max(1, total):.1f}%"


def _figures(nights: list[NightCounts]) -> list[Figure]:
    night, before = nights[-1], (nights[-2] if len(nights) > 1 else None)
    figures = []
    for metric in METRICS:
        change = "no night before"
        if before is not None:
            delta = night.counts[metric] - before.counts[metric]
            points = 100 * (night.share(metric) - before.share(metric))
            change = f"{delta:+d} ({points:+.1f} pp) vs {before.night}"
        figures.append(
            Figure(
                metric,
                night.counts[metric],
                _share(night.counts[metric], night.sessions),
                change,
                COLOURS[metric],
            )
        )
    return figures


def _trend_rows(nights: list[NightCounts]) -> list[dict[str, Any]]:
    rows = []
    for i, night in enumerate(nights):
        before = nights[i - 1] if i else None
        cells = []
        for metric in METRICS:
            change = ""
            if before is not None:
                change = f"{100 * (night.share(metric) - before.share(metric)):+.1f} pp"
            cells.append(
                (night.counts[metric], _share(night.counts[metric], night.sessions), change)
            )
        rows.append({"night": night.night, "sessions": night.sessions, "cells": cells})
    return rows


def _shown(row: Flagged) -> dict[str, Any]:
    links = [s3_link(bucket, key) for bucket, key in row.images]
    return {
        "session_id": row.session_id,
        "kept": row.kept,
        "status": row.status,
        "confidence": "" if row.confidence is None else f"{row.confidence:.2f}",
        "error": row.error_code,
        "app": row.app_decision,
        "service": row.service_decision,
        "disagreement": row.disagreement,
        "reason": row.reason,
        "links": [link for link in links if link is not None],
    }


def _listing(
    reports: Reports, night: str, where: str, params: list[object], total: int, limit: int
) -> Listing:
    rows = flagged(reports, night, where, params, limit)
    return Listing(tuple(_shown(r) for r in rows), total)


def _figure_png(draw: Callable[[Any], None], size: tuple[float, float] = (6.4, 3.2)) -> str:
    """A matplotlib drawing (mathtext off: labels are text), as base64 PNG data."""
    import matplotlib as mpl  # noqa: PLC0415  # only the HTML report needs matplotlib

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    with mpl.rc_context({"text.parse_math": False, "font.size": 9}):
        fig, ax = plt.subplots(figsize=size, dpi=80)
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _outcome_chart(night: NightCounts) -> Chart:
    values = [night.counts[o] for o in OUTCOMES]

    def draw(ax: Any) -> None:
        bars = ax.bar(list(OUTCOMES), values, color=[COLOURS[o] for o in OUTCOMES])
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2)
        ax.set_title(f"Sessions by outcome, night {night.night}")
        ax.set_xlabel("outcome")
        ax.set_ylabel("sessions")
        ax.margins(y=0.15)

    said = ", ".join(
        f"{o} {v:,} ({_share(v, night.sessions)})" for o, v in zip(OUTCOMES, values, strict=True)
    )
    return Chart(
        _figure_png(draw),
        f"Bar chart of the {night.sessions:,} sessions of night {night.night} by outcome: {said}.",
    )


def _histogram_chart(detail: Detail, threshold: float) -> Chart:
    edges = [5 * i for i in range(20)]
    counts = list(detail.histogram)
    colours = [COLOURS["pass"] if e >= threshold else COLOURS["fail"] for e in edges]

    def draw(ax: Any) -> None:
        ax.bar(edges, counts, width=5, align="edge", color=colours, edgecolor="white")
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
        ax.set_title(f"Confidence of sessions with one, night {detail.night}")
        ax.set_xlabel("confidence (5-point bins)")
        ax.set_ylabel("sessions")
        ax.set_xlim(0, 100)
        ax.legend(loc="upper left")  # "best" searches the data: slow, and warns, at volume

    total = sum(counts)
    above = sum(c for e, c in zip(edges, counts, strict=True) if e >= threshold)
    median = f", median {detail.confidence[50]:.2f}" if detail.confidence else ""
    alt = (
        f"Histogram of the confidence of {total:,} sessions of night {detail.night} in 5-point "
        f"bins; {above:,} in bins at or above the threshold {threshold:g}{median}."
    )
    return Chart(_figure_png(draw), alt)


def _trend_chart(nights: list[NightCounts]) -> Chart:
    labels = [n.night for n in nights]

    def draw(ax: Any) -> None:
        for outcome in OUTCOMES:
            ax.plot(
                labels,
                [100 * n.share(outcome) for n in nights],
                marker="o",
                color=COLOURS[outcome],
                label=outcome,
            )
        last = nights[-1]
        for outcome in OUTCOMES:
            ax.annotate(
                f"{100 * last.share(outcome):.1f}%",
                (labels[-1], 100 * last.share(outcome)),
                textcoords="offset points",
                xytext=(4, 0),
                fontsize=7,
            )
        ax.set_title("Share of sessions by outcome, by night")
        ax.set_xlabel("night (date partition)")
        ax.set_ylabel("% of the night's sessions")
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.08, 0.5))

    first, last = nights[0], nights[-1]
    alt = (
        f"Line chart of the share of each outcome over {len(nights)} nights, {first.night} to "
        f"{last.night}: pass {100 * first.share('pass'):.1f}% then "
        f"{100 * last.share('pass'):.1f}%, fail {100 * first.share('fail'):.1f}% then "
        f"{100 * last.share('fail'):.1f}%."
    )
    return Chart(_figure_png(draw, (7.2, 3.6)), alt)


def _script() -> tuple[str, str]:
    """The page's one script and its CSP source (``'sha256-...'`` of its exact text)."""
    loader = _environment.loader
    assert loader is not None
    text, _, _ = loader.get_source(_environment, "tables.js")
    if "</" in text:  # it would end the <script> element early
        raise AssertionError("tables.js must not contain '</'")
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return text, f"'sha256-{digest}'"


def render_html(reports: Reports, nights: list[NightCounts], detail: Detail) -> str:
    """One self-contained page: the facts, charts embedded, no network, one script.

    At most :data:`MAX_BYTES`: lists start at :data:`LISTED` sessions (a quarter of that
    per direction of disagreement) and are halved until the page fits (long kept values
    or many images make rows larger).
    """
    night = nights[-1]
    thresholds = sorted({f.threshold for f in detail.files})
    charts = [_outcome_chart(night), _histogram_chart(detail, thresholds[0])]
    trend = _trend_chart(nights) if len(nights) > 1 else None
    limit = LISTED
    while True:
        page = _render(reports, nights, detail, (charts, trend), limit)
        if len(page.encode("utf-8")) <= MAX_BYTES or limit <= 1:
            return page
        limit //= 2


def _render(
    reports: Reports,
    nights: list[NightCounts],
    detail: Detail,
    charts: tuple[list[Chart], Chart | None],
    limit: int,
) -> str:
    night = nights[-1]
    thresholds = sorted({f.threshold for f in detail.files})
    script, script_source = _script()
    directions = [
        (d, _listing(reports, night.night, "direction = ?", [d], n, max(1, limit // 4)))
        for d, n in detail.directions
    ]
    look = _listing(
        reports,
        night.night,
        "reason IS NOT NULL AND reason <> ?",
        [AGREEING_FAIL],
        detail.look,
        limit,
    )
    return _environment.get_template("summary.html.j2").render(
        night=night,
        nights=nights,
        detail=detail,
        thresholds=", ".join(f"{t:g}" for t in thresholds),
        threshold_source=detail.files[0].threshold_source,
        figures=_figures(nights),
        metrics=METRICS,
        colours=COLOURS,
        trend=_trend_rows(nights),
        directions=directions,
        look=look,
        agreeing_fail=AGREEING_FAIL,
        charts=charts[0],
        trend_chart=charts[1],
        kept=[name for name, _ in reports.kept],
        files=reports.files[-FOOTER_FILES:],
        files_total=len(reports.files),
        script=Markup(script),  # noqa: S704  # our own file, checked to hold no '</'
        script_source=Markup(script_source),  # noqa: S704  # quotes and base64 only
    )
