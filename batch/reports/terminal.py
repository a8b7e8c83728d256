"""The terminal summary: readable at 80 columns and in a pipe.

Tables have no vertical rules (two spaces between columns), numbers never wrap, session
IDs are shortened to their first 8 and last 4 characters in lists (the CSV has them whole), and a
list shows at most :data:`LISTED` sessions, saying how many more there are. Every section
names the night it covers. Values are printed as text (no rich markup from a report).
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batch.reports.engine import Reports
from batch.reports.summary import (
    AGREEING_FAIL,
    METRICS,
    OUTCOMES,
    PERCENTILES,
    Detail,
    NightCounts,
    flagged,
)

__all__ = ["LISTED", "render_terminal", "short_id"]

LISTED = 10  # sessions listed per direction of disagreement
_HEAD, _TAIL = 8, 4


def short_id(session_id: str) -> str:
    """A session ID as its first 8 and last 4 characters (``1a2b3c4d…9e8f``) when longer."""
    if len(session_id) <= _HEAD + _TAIL + 1:
        return session_id
    return f"{session_id[:_HEAD]}…{session_id[-_TAIL:]}"


def _table(title: str, *columns: str) -> Table:
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, min_width=len(title)
    )
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i > 0)
    return table


def _change(now: float, before: float | None) -> str:
    if before is None:
        return "-"
    points = 100 * (now - before)
    return f"{points:+.1f} pp"


def render_terminal(
    reports: Reports, nights: list[NightCounts], detail: Detail, console: Console
) -> None:
    """The latest night's facts, its disagreements, and the trend when there are several."""
    night = nights[-1]
    before = nights[-2] if len(nights) > 1 else None
    files = detail.files
    thresholds = sorted({f.threshold for f in files})
    console.print(
        f"[bold]Night {escape(night.night)}[/bold] ({len(files)} report"
        f"{'s' if len(files) > 1 else ''}, {night.sessions} sessions); threshold "
        f"{', '.join(f'{t:g}' for t in thresholds)} from {escape(files[0].threshold_source)}"
    )
    for f in files:
        console.print(
            f"  {escape(f.source)}: run {escape(f.run_id[:12])} {escape(f.started_at[:19])}, "
            f"liveness-audit {escape(f.tool_version)}",
            overflow="fold",
        )
    headline = _table(f"Outcomes, night {night.night}", "outcome", "sessions", "share", "change")
    for metric in METRICS:
        headline.add_row(
            metric,
            str(night.counts[metric]),
            f"{100 * night.share(metric):.1f}%",
            _change(night.share(metric), before.share(metric) if before else None),
        )
    console.print(headline)
    if detail.reconciled:
        _render_disagreements(reports, detail, console)
    _render_detail(detail, console)
    if len(nights) > 1:
        _render_trend(nights, console)


def _render_disagreements(reports: Reports, detail: Detail, console: Console) -> None:
    counts = detail.reconciliation
    console.print(
        f"Reconciled with the application's decisions, night {detail.night}: "
        f"{counts['agreed']} agree, {counts['disagreed']} disagree, "
        f"{counts['unverifiable']} unverifiable"
    )
    kept = [name for name, _ in reports.kept][:1]  # the first kept column: the reference
    for direction, count in detail.directions:
        rows = flagged(reports, detail.night, "direction = ?", [direction], LISTED)
        table = _table(f"{direction}: {count}", "session", *kept, "confidence")
        for row in rows:
            score = "" if row.confidence is None else f"{row.confidence:.2f}"
            table.add_row(escape(short_id(row.session_id)), *map(escape, row.kept[:1]), score)
        console.print(table)
        if count > len(rows):
            console.print(f"  ... and {count - len(rows)} more (all in --csv)")


def _render_detail(detail: Detail, console: Console) -> None:
    status = _table(f"Sessions by status, night {detail.night}", "status", "sessions")
    for name, count in detail.by_status:
        status.add_row(escape(name), str(count))
    console.print(status)
    split = _table(
        f"Pass/fail by challenge type, night {detail.night}", "challenge", "pass", "fail", "pass %"
    )
    for row in detail.challenges:
        split.add_row(
            escape(row.challenge), str(row.passed), str(row.failed), f"{100 * row.share:.1f}%"
        )
    console.print(split)
    if detail.confidence:
        percentiles = _table(f"Confidence, night {detail.night}", *(f"p{p}" for p in PERCENTILES))
        percentiles.add_row(*(f"{detail.confidence[p]:.2f}" for p in PERCENTILES))
        console.print(percentiles)
    reasons = _table(f"Need a look by reason, night {detail.night}", "reason", "sessions")
    for reason, count in detail.reasons:
        shown = f"{reason} (not listed on the page)" if reason == AGREEING_FAIL else reason
        reasons.add_row(escape(shown), str(count))
    console.print(reasons if detail.reasons else f"Need a look, night {detail.night}: none")
    errors = _table(f"Errors by code, night {detail.night}", "error_code", "sessions")
    for code, count in detail.errors:
        errors.add_row(escape(code), str(count))
    console.print(errors if detail.errors else f"Errors by code, night {detail.night}: none")
    console.print(
        f"Attempts: {detail.attempts_total} in all, at most {detail.attempts_max} for one session"
    )


def _render_trend(nights: list[NightCounts], console: Console) -> None:
    trend = _table("Trend by night", "night", "sessions", *OUTCOMES, "disagr.")
    for n in nights:
        trend.add_row(escape(n.night), str(n.sessions), *(str(n.counts[m]) for m in METRICS))
    console.print(trend)
