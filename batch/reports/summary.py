"""Audit summaries people read: ``liveness-audit summarize REPORT...``.

Reads one report, a folder of them or a glob (nightly reports), computes the facts an
analyst looks for (sessions by status, pass/fail against a confidence threshold, pending
sessions, pass/fail by challenge type, confidence percentiles, errors by code, attempts
and throttling, provenance) and shows
them as terminal tables, with a trend by night when several reports are given (the page is
:mod:`batch.reports.html`; the spreadsheets :mod:`batch.reports.export`). The flat
per-session table (no image bytes, bounding boxes as columns) can be written as CSV or
XLSX for spreadsheet users.

A report of a run that reconciled the application's decisions (``--app-decision-column``)
has its disagreements shown first: the sessions, their kept input columns (the customer
reference) and where the service stored their images.

Pending sessions (``CREATED``/``IN_PROGRESS``: the run's last answer, not a result) are
their own group beside pass and fail: nothing is settled about them, a rerun asks again.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batch.aws.s3 import connect_s3, local_copy
from batch.config import Settings
from batch.errors import ConfigError, InputError, OutputError
from batch.store.locations import is_s3, parse_s3_url
from batch.store.report import (
    IMAGE_FIELDS,
    RECONCILED_FIELDS,
    REGION_FIELD,
    SCHEMA,
    read_provenance,
    read_table,
)

__all__ = [
    "NO_CHALLENGE",
    "PENDING",
    "PENDING_LABEL",
    "ChallengeSplit",
    "Night",
    "challenge_split",
    "disagreements",
    "find_reports",
    "flat_table",
    "kept_columns",
    "load_night",
    "load_nights",
    "render_terminal",
]

PERCENTILES = (5, 25, 50, 75, 95)
PENDING = ("CREATED", "IN_PROGRESS")
PENDING_LABEL = "pending (not settled: a rerun asks again)"
NO_CHALLENGE = "(no challenge)"  # a result whose answer carried no Challenge


@dataclass(frozen=True)
class ChallengeSplit:
    """Pass and fail of the sessions with a result, for one challenge type."""

    challenge: str
    passed: int
    failed: int

    @property
    def share(self) -> float:
        """The share that passed, in [0, 1] (0 with no sessions)."""
        return self.passed / max(1, self.passed + self.failed)


@dataclass(frozen=True)
class Night:
    """One report and the facts computed from it."""

    path: Path
    source: str  # where the report is, as the user named it (a path or s3:// URL)
    provenance: dict[str, Any]
    sessions: int
    by_status: dict[str, int]
    errors: dict[str, int]
    passed: int
    failed: int
    pending: int
    challenges: tuple[ChallengeSplit, ...]
    confidence: dict[int, float]
    attempts_total: int
    attempts_max: int
    frame: pd.DataFrame

    @property
    def when(self) -> str:
        return str(self.provenance.get("started_at", ""))[:19]

    @property
    def reconciled(self) -> bool:
        """Whether the run compared the application's decisions (its report has ``agrees``)."""
        return "agrees" in self.frame.columns

    def reconciliation(self) -> dict[str, int]:
        """Sessions by how the application's decision compares with the service's."""
        frame = self.frame
        agrees = frame["agrees"]
        # Rows a run reconciled carry the application's decision or why it was unusable;
        # others (sessions of an input without decisions, invalid cells) were not compared.
        compared = frame["app_decision"].notna() | frame["app_decision_error"].notna()
        return {
            "agreed": int((agrees == True).sum()),  # noqa: E712  # a nullable column
            "disagreed": int((agrees == False).sum()),  # noqa: E712
            "unverifiable": int((agrees.isna() & compared).sum()),
        }


_REPORT_COLUMNS = frozenset(
    {*SCHEMA.names, REGION_FIELD.name, *(f.name for f in RECONCILED_FIELDS)}
)


def kept_columns(frame: pd.DataFrame) -> list[str]:
    """The input columns a run kept in its report (``--keep-columns``), in order."""
    return [str(c) for c in frame.columns if c not in _REPORT_COLUMNS]


def disagreements(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows whose application decision the service contradicts (none if not reconciled)."""
    if "agrees" not in frame.columns:
        return frame.iloc[0:0]
    return frame[frame["agrees"] == False]  # noqa: E712  # a nullable column


def find_reports(patterns: Iterable[str]) -> list[Path]:
    """Files, folders (every ``*.parquet`` below) and globs, in name order."""
    found: set[Path] = set()
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found.update(path.rglob("*.parquet"))
        elif path.is_file():
            found.add(path)
        else:
            matches = [Path(m) for m in glob.glob(pattern, recursive=True)]  # noqa: PTH207  # a user's glob
            if not matches:
                raise InputError(f"no report found at {pattern}")
            found.update(m for m in matches if m.is_file())
    if not found:
        raise InputError("no .parquet reports found in " + ", ".join(patterns))
    return sorted(found)


def load_night(path: Path, threshold: float, source: str | None = None) -> Night:
    """The facts of the report at ``path`` (a local copy of ``source``, if given)."""
    source = source or str(path)
    try:
        frame = read_table(path).to_pandas()
        provenance = read_provenance(path)
    except (OSError, ValueError, OutputError) as exc:
        raise InputError(f"{source} is not a liveness-audit report: {exc}") from None
    status = frame["status"]
    finished = status.isin(["SUCCEEDED", "FAILED"])
    passed = int(_passing(frame, threshold).sum())
    scores = frame["confidence"].dropna()
    return Night(
        path=path,
        source=source,
        provenance=provenance,
        sessions=len(frame),
        by_status={str(k): int(v) for k, v in status.value_counts().sort_index().items()},
        errors={str(k): int(v) for k, v in frame["error_code"].value_counts().items()},
        passed=passed,
        failed=int(finished.sum()) - passed,
        pending=int(status.isin(PENDING).sum()),
        challenges=challenge_split(frame, threshold),
        confidence={p: float(scores.quantile(p / 100)) for p in PERCENTILES} if len(scores) else {},
        attempts_total=int(frame["attempts"].sum()),
        attempts_max=int(frame["attempts"].max()) if len(frame) else 0,
        frame=frame,
    )


def _passing(frame: pd.DataFrame, threshold: float) -> pd.Series:
    """Which sessions pass: ``SUCCEEDED`` at or above ``threshold``."""
    return (frame["status"] == "SUCCEEDED") & (frame["confidence"] >= threshold)


def challenge_split(frame: pd.DataFrame, threshold: float) -> tuple[ChallengeSplit, ...]:
    """Pass/fail of the sessions with a result by ``challenge_type``, in name order, the
    results without a challenge (older answers, older reports) last."""
    finished = frame[frame["status"].isin(["SUCCEEDED", "FAILED"])]
    if "challenge_type" in finished.columns:
        kinds = (
            finished["challenge_type"]
            .astype(object)
            .where(finished["challenge_type"].notna(), NO_CHALLENGE)
        )
    else:
        kinds = pd.Series(NO_CHALLENGE, index=finished.index, dtype=object)
    passing = _passing(finished, threshold)
    splits = []
    for kind in sorted(set(kinds), key=lambda k: (k == NO_CHALLENGE, k)):
        chosen = kinds == kind
        passed = int((passing & chosen).sum())
        splits.append(ChallengeSplit(str(kind), passed, int(chosen.sum()) - passed))
    return tuple(splits)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def render_terminal(nights: list[Night], threshold: float, console: Console) -> None:
    """Print the facts of the last report, and the trend when there are several."""
    night = nights[-1]
    p = night.provenance
    console.print(
        f"[bold]{night.source}[/bold]: {night.sessions} sessions, run {night.when} UTC, "
        f"input {p.get('input_path')} (sha256 {str(p.get('input_sha256', ''))[:12]}), "
        f"liveness-audit {p.get('tool_version')}"
    )
    if night.reconciled:
        _render_disagreements(night, console)
    status = _table("Sessions by status", "status", "sessions", "share")
    for name, count in night.by_status.items():
        status.add_row(name, str(count), f"{100 * count / max(1, night.sessions):.1f}%")
    no_answer = night.sessions - sum(night.by_status.values())
    status.add_row(
        "(no answer)", str(no_answer), f"{100 * no_answer / max(1, night.sessions):.1f}%"
    )
    console.print(status)
    _render_outcomes(night, threshold, console)
    if night.confidence:
        percentiles = _table("Confidence percentiles", *(f"p{p}" for p in PERCENTILES))
        percentiles.add_row(*(f"{night.confidence[p]:.2f}" for p in PERCENTILES))
        console.print(percentiles)
    errors = _table("Errors by code", "error_code", "sessions")
    for code, count in sorted(night.errors.items()):
        errors.add_row(code, str(count))
    console.print(errors if night.errors else "Errors by code: none")
    console.print(
        f"Attempts: {night.attempts_total} in all, at most {night.attempts_max} for one session; "
        f"{p.get('throttled', 0)} throttled of {p.get('requests', 0)} requests"
    )
    if len(nights) > 1:
        _render_trend(nights, console)


def _render_outcomes(night: Night, threshold: float, console: Console) -> None:
    """Pass, fail and pending; then pass/fail by challenge type."""
    verdict = _table(f"Pass/fail at confidence >= {threshold:g}", "outcome", "sessions")
    verdict.add_row("pass (SUCCEEDED, at or above)", str(night.passed))
    verdict.add_row("fail (FAILED, or below)", str(night.failed))
    verdict.add_row(PENDING_LABEL, str(night.pending))
    console.print(verdict)
    if not night.challenges:
        return
    split = _table(
        f"Pass/fail by challenge type at confidence >= {threshold:g}",
        "challenge_type",
        "pass",
        "fail",
        "pass share",
    )
    for row in night.challenges:
        split.add_row(
            escape(row.challenge), str(row.passed), str(row.failed), f"{100 * row.share:.1f}%"
        )
    console.print(split)


def _render_trend(nights: list[Night], console: Console) -> None:
    trend = _table(
        "Trend by night", "night", "sessions", "pass", "fail", "pending", "median", "errors"
    )
    for n in nights:
        median = f"{n.confidence[50]:.2f}" if n.confidence else "-"
        trend.add_row(
            n.when[:10] or PurePosixPath(n.source).name,
            str(n.sessions),
            str(n.passed),
            str(n.failed),
            str(n.pending),
            median,
            str(sum(n.errors.values())),
        )
    console.print(trend)


def _render_disagreements(night: Night, console: Console) -> None:
    """The application's decisions the service contradicts, first: who, what, where."""
    counts = night.reconciliation()
    console.print(
        f"Reconciled with the application's decisions: {counts['agreed']} agree, "
        f"{counts['disagreed']} disagree, {counts['unverifiable']} unverifiable"
    )
    found = disagreements(night.frame)
    if found.empty:
        return
    kept = kept_columns(night.frame)
    table = Table(
        title="Disagreements: the service contradicts the application", title_justify="left"
    )
    for column in ("session", *kept):
        table.add_column(column, no_wrap=True)  # whole, so it can be copied
    for column in ("app", "service", "confidence", "why"):
        table.add_column(column, overflow="fold")
    evidence = []
    for row in found.to_dict("records"):
        confidence = row["confidence"]
        bucket, key = row["reference_s3_bucket"], row["reference_s3_name"]
        values = (
            row["session_id"],
            *(row[c] for c in kept),
            row["app_decision"],
            f"{row['service_decision']} ({row['status']})",
            "" if pd.isna(confidence) else f"{confidence:.2f}",
            row["disagreement"],
        )
        table.add_row(*map(_plain, values))
        if isinstance(key, str):
            evidence.append(f"  {_plain(row['session_id'])}: s3://{_plain(bucket)}/{_plain(key)}")
    console.print(table)
    if evidence:
        console.print("Their reference images in S3:", *evidence, sep="\n")


def _plain(value: object) -> str:
    """A cell as plain text: no rich markup, nothing for a missing value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return escape(str(value))


def flat_table(nights: list[Night]) -> pd.DataFrame:
    """One row per session and report: audit images as numbered columns, no bytes."""
    frames = []
    for night in nights:
        frame = night.frame.drop(columns=["audit_images"])
        widest = int(night.frame["audit_image_count"].max()) if len(night.frame) else 0
        for i in range(widest):
            for name in IMAGE_FIELDS:
                frame[f"audit_{i}_{name}"] = [
                    images[i][name] if i < len(images) else None
                    for images in night.frame["audit_images"]
                ]
        frame.insert(0, "report", night.source)
        for column in frame.columns:  # spreadsheets know no time zones: UTC, unmarked
            if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
            elif column.endswith("evidence_last_modified"):
                frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


async def load_nights(reports: tuple[str, ...], settings: Settings, folder: Path) -> list[Night]:
    """The nights of ``reports``: local files, folders and globs as they are; S3 objects,
    or every ``.parquet`` under an S3 prefix, copied into ``folder`` first."""
    local = [r for r in reports if not is_s3(r)]
    nights = [load_night(path, settings.threshold) for path in find_reports(local)] if local else []
    remote = [r for r in reports if is_s3(r)]
    if not remote:
        return nights
    async with connect_s3(settings) as store:
        for text in remote:
            try:
                url = parse_s3_url(text, "REPORTS")
            except ValueError as exc:
                raise ConfigError(f"invalid {exc}") from None
            found = (
                [url] if url.key.endswith(".parquet") else await store.find(url, suffix=".parquet")
            )
            if not found:
                raise InputError(f"no .parquet reports found under {text}")
            for item in found:
                copy = await local_copy(store, item, folder, "report")
                nights.append(load_night(copy, settings.threshold, source=str(item)))
    return nights
