"""Audit summaries people read: the facts of ``liveness-audit summarize REPORT...``.

Reports (a file, a folder of nights, a glob, an S3 object or prefix) are read through
:mod:`batch.reports.engine` (DuckDB, out of core), so the facts cost the same memory for
one night or thirty. They are plain records:

- :class:`NightCounts` for every night (the trend): sessions by outcome (pass, fail,
  pending, expired, error: every session in exactly one) and disagreements;
- :class:`Detail` for the latest night (the one every detail section names): sessions by
  status, errors by code, pass/fail by challenge type, confidence percentiles, the
  reconciliation with the application's decisions by direction, "need a look" by reason;
- :class:`Flagged` rows, a LIMITed list of sessions for the page and the terminal.

Outcomes, directions and reasons are defined once, in ``queries.sql`` (view ``audit``).
The terminal tables are :mod:`batch.reports.terminal`, the page :mod:`batch.reports.html`,
the spreadsheets :mod:`batch.reports.export`.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch.aws.s3 import connect_s3, local_copy
from batch.config import Settings
from batch.errors import ConfigError, InputError
from batch.reports.engine import Pin, ReportFile, Reports, read_report_file
from batch.store.locations import is_s3, parse_s3_url

__all__ = [
    "AGREEING_FAIL",
    "DIRECTIONS",
    "METRICS",
    "NO_CHALLENGE",
    "OUTCOMES",
    "PERCENTILES",
    "ChallengeSplit",
    "Detail",
    "Flagged",
    "NightCounts",
    "find_reports",
    "flagged",
    "night_counts",
    "night_detail",
    "open_reports",
]

PERCENTILES = (5, 25, 50, 75, 95)
OUTCOMES = ("pass", "fail", "pending", "expired", "error")
METRICS = (*OUTCOMES, "disagreements")  # the trend's figures, each with its change
DIRECTIONS = ("app passed, service failed", "app failed, service passed", "confidences differ")
AGREEING_FAIL = "fail, app agrees"  # a reason the page leaves out by default
NO_CHALLENGE = "(no challenge)"  # a result whose answer carried no Challenge
NO_STATUS = "(no status)"


@dataclass(frozen=True, slots=True)
class NightCounts:
    """One night's sessions by outcome, and its disagreements."""

    night: str
    sessions: int
    counts: dict[str, int]  # by METRICS name

    def share(self, metric: str) -> float:
        """``metric``'s share of the night's sessions, in [0, 1]."""
        return self.counts[metric] / max(1, self.sessions)


@dataclass(frozen=True, slots=True)
class ChallengeSplit:
    """Pass and fail of the sessions with a result, for one challenge type."""

    challenge: str
    passed: int
    failed: int

    @property
    def share(self) -> float:
        """The share that passed, in [0, 1] (0 with no sessions)."""
        return self.passed / max(1, self.passed + self.failed)


@dataclass(frozen=True, slots=True)
class Detail:
    """The facts of one night beyond its counts."""

    night: str
    files: tuple[ReportFile, ...]
    by_status: tuple[tuple[str, int], ...]  # adds up to the night's sessions
    errors: tuple[tuple[str, int], ...]
    challenges: tuple[ChallengeSplit, ...]
    confidence: dict[int, float]  # percentile -> value; empty without results
    histogram: tuple[int, ...]  # sessions with a result by 5-point bin of confidence
    attempts_total: int
    attempts_max: int
    reconciliation: dict[str, int]  # agreed, disagreed, unverifiable; empty: not reconciled
    directions: tuple[tuple[str, int], ...]  # DIRECTIONS order, only those with sessions
    reasons: tuple[tuple[str, int], ...]  # most first

    @property
    def reconciled(self) -> bool:
        return bool(self.reconciliation)

    @property
    def look(self) -> int:
        """Sessions that need a look, agreeing fails left out."""
        return sum(n for reason, n in self.reasons if reason != AGREEING_FAIL)


@dataclass(frozen=True, slots=True)
class Flagged:
    """A session as a list shows it: who, what the service said, why it is listed."""

    session_id: str
    kept: tuple[str, ...]
    status: str
    confidence: float | None
    error_code: str
    app_decision: str
    service_decision: str
    disagreement: str
    reason: str
    images: tuple[tuple[object, object], ...]  # (bucket, key) of images stored in S3


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


async def open_reports(
    reports: Sequence[str], settings: Settings, folder: Path, *, threshold: float | None
) -> Reports:
    """The engine over ``reports``: local files, folders and globs as they are; S3 objects,
    or every ``.parquet`` under an S3 prefix, copied into ``folder`` first (which is also
    where DuckDB spills). ``threshold``: the one given, else each report's own."""

    def read(path: Path, source: str) -> ReportFile:
        return read_report_file(
            path, source=source, threshold=threshold, default=settings.threshold
        )

    local = [r for r in reports if not is_s3(r)]
    pins: list[Pin] = []
    try:
        files = []
        for path in find_reports(local) if local else []:
            pins.append(Pin(path))
            files.append(read(pins[-1].path, str(path)))
        files += await _staged(reports, settings, folder, read)
    except BaseException:
        for pin in pins:
            pin.close()
        raise
    spill = folder / "spill"
    spill.mkdir(mode=0o700, exist_ok=True)
    return Reports(files, spill=spill, pins=pins)


async def _staged(
    reports: Sequence[str],
    settings: Settings,
    folder: Path,
    read: Callable[[Path, str], ReportFile],
) -> list[ReportFile]:
    """The S3 reports, copied into ``folder``."""
    files: list[ReportFile] = []
    remote = [r for r in reports if is_s3(r)]
    if remote:
        async with connect_s3(settings) as store:
            for text in remote:
                try:
                    url = parse_s3_url(text, "REPORTS")
                except ValueError as exc:
                    raise ConfigError(f"invalid {exc}") from None
                found = (
                    [url]
                    if url.key.endswith(".parquet")
                    else await store.find(url, suffix=".parquet")
                )
                if not found:
                    raise InputError(f"no .parquet reports found under {text}")
                for item in found:
                    files.append(read(await local_copy(store, item, folder, "report"), str(item)))
    return files


_BY_OUTCOME = ", ".join(f"count(*) FILTER (WHERE outcome = '{o}')" for o in OUTCOMES)
_COUNTS = (
    f'SELECT "date", count(*), {_BY_OUTCOME}, count(*) FILTER (WHERE agrees = false) '  # noqa: S608  # our own constants
    'FROM audit GROUP BY "date"'
)


def night_counts(reports: Reports) -> list[NightCounts]:
    """Every night's counts, in night order."""
    found = {row[0]: row[1:] for row in reports.rows(_COUNTS)}
    nights = []
    for night in reports.nights:
        sessions, *values = found.get(night, (0,) * (len(METRICS) + 1))
        nights.append(
            NightCounts(night, int(sessions), dict(zip(METRICS, map(int, values), strict=True)))
        )
    return nights


def _pairs(rows: Iterable[tuple[Any, ...]]) -> tuple[tuple[str, int], ...]:
    return tuple((str(name), int(count)) for name, count in rows)


def night_detail(reports: Reports, night: str) -> Detail:
    """The facts of ``night`` beyond its counts."""
    on = [night]
    statuses = reports.rows(
        'SELECT coalesce(status, ?) AS s, count(*) FROM audit WHERE "date" = ? '
        "GROUP BY s ORDER BY s",
        [NO_STATUS, night],
    )
    errors = reports.rows(
        'SELECT error_code, count(*) FROM audit WHERE "date" = ? AND error_code IS NOT NULL '
        "GROUP BY error_code ORDER BY error_code",
        on,
    )
    ((attempts_total, attempts_max),) = reports.rows(
        'SELECT coalesce(sum(attempts), 0), coalesce(max(attempts), 0) FROM audit WHERE "date" = ?',
        on,
    )
    return Detail(
        night=night,
        files=tuple(f for f in reports.files if f.night == night),
        by_status=_pairs(statuses),
        errors=_pairs(errors),
        challenges=_challenges(reports, night),
        confidence=_percentiles(reports, night),
        histogram=_histogram(reports, night),
        attempts_total=int(attempts_total),
        attempts_max=int(attempts_max),
        reconciliation=_reconciliation(reports, night),
        directions=_directions(reports, night),
        reasons=_pairs(
            reports.rows(
                'SELECT reason, count(*) AS n FROM audit WHERE "date" = ? AND reason IS NOT NULL '
                "GROUP BY reason ORDER BY n DESC, reason",
                on,
            )
        ),
    )


def _challenges(reports: Reports, night: str) -> tuple[ChallengeSplit, ...]:
    """Pass/fail by ``challenge_type`` in name order, results without a challenge last."""
    rows = reports.rows(
        "SELECT challenge_type, count(*) FILTER (WHERE outcome = 'pass'), "
        "count(*) FILTER (WHERE outcome = 'fail') FROM audit "
        "WHERE \"date\" = ? AND outcome IN ('pass', 'fail') GROUP BY challenge_type",
        [night],
    )
    splits = [
        ChallengeSplit(NO_CHALLENGE if k is None else str(k), int(p), int(f)) for k, p, f in rows
    ]
    return tuple(sorted(splits, key=lambda s: (s.challenge == NO_CHALLENGE, s.challenge)))


def _percentiles(reports: Reports, night: str) -> dict[int, float]:
    points = [p / 100 for p in PERCENTILES]
    (values,) = reports.rows(
        'SELECT quantile_cont(confidence, ?) FROM audit WHERE "date" = ? '
        "AND confidence IS NOT NULL",
        [points, night],
    )[0]
    return {} if values is None else dict(zip(PERCENTILES, map(float, values), strict=True))


def _histogram(reports: Reports, night: str) -> tuple[int, ...]:
    """Sessions with a confidence by bin of 5 points (100 in the last bin)."""
    rows = reports.rows(
        "SELECT least(CAST(floor(confidence / 5) AS INTEGER), 19) AS bin, count(*) FROM audit "
        'WHERE "date" = ? AND confidence BETWEEN 0 AND 100 GROUP BY bin',
        [night],
    )
    counts = dict(rows)
    return tuple(int(counts.get(i, 0)) for i in range(20))


def _reconciliation(reports: Reports, night: str) -> dict[str, int]:
    """Agreed, disagreed and unverifiable among the rows a run compared; empty if none."""
    ((agreed, disagreed, unverifiable, compared),) = reports.rows(
        "SELECT count(*) FILTER (WHERE agrees = true), count(*) FILTER (WHERE agrees = false), "
        'count(*) FILTER (WHERE agrees IS NULL), count(*) FROM audit WHERE "date" = ? '
        "AND (app_decision IS NOT NULL OR app_decision_error IS NOT NULL)",
        [night],
    )
    if not compared:
        return {}
    return {"agreed": agreed, "disagreed": disagreed, "unverifiable": unverifiable}


def _directions(reports: Reports, night: str) -> tuple[tuple[str, int], ...]:
    counts = dict(
        reports.rows(
            'SELECT direction, count(*) FROM audit WHERE "date" = ? AND direction IS NOT NULL '
            "GROUP BY direction",
            [night],
        )
    )
    return tuple((d, int(counts[d])) for d in DIRECTIONS if counts.get(d))


def flagged(
    reports: Reports, night: str, where: str, params: Sequence[object], limit: int
) -> list[Flagged]:
    """Up to ``limit`` sessions of ``night`` matching ``where`` (SQL over ``audit``), in the
    order of reasons (disagreements first), then session ID."""
    kept = [name for name, _ in reports.kept]
    columns = ", ".join(f'"{k.replace(chr(34), chr(34) * 2)}"' for k in kept)
    order = "list_position(?, reason), session_id"
    picked = (
        "session_id, status, confidence, error_code, app_decision, service_decision, "
        "coalesce(disagreement, app_decision_error), reason, reference_s3_bucket, "
        "reference_s3_name, [(i.s3_bucket, i.s3_name) FOR i IN audit_images]"
        + (", " + columns if kept else "")
    )
    # quoted names; ``where`` is the caller's own SQL, its values bound
    sql = f'SELECT {picked} FROM audit WHERE "date" = ? AND ({where}) ORDER BY {order} LIMIT {int(limit)}'  # noqa: S608, E501
    rows = reports.rows(sql, [night, *params, [*DIRECTIONS, *_REASON_ORDER]])
    return [_flagged(row, len(kept)) for row in rows]


_REASON_ORDER = (
    "evidence missing or changed",
    "app decision unusable",
    "succeeded below the threshold",
    "pending: a rerun asks again",
    "failed",
    "expired: no result kept",
    AGREEING_FAIL,
)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _flagged(row: tuple[Any, ...], kept: int) -> Flagged:
    sid, status, confidence, error, app, service, why, reason, bucket, key, audit = row[:11]
    images = [(bucket, key)] if key is not None else []
    images += [(b, k) for b, k in (audit or ()) if k is not None]
    return Flagged(
        session_id=_text(sid),
        kept=tuple(_text(v) for v in row[11 : 11 + kept]),
        status=_text(status),
        confidence=None if confidence is None else float(confidence),
        error_code=_text(error),
        app_decision=_text(app),
        service_decision=_text(service),
        disagreement=_text(why),
        reason=_text(reason),
        images=tuple(images),
    )
