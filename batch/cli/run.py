"""``liveness-audit run``: the audit of one input into one report."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click

from batch.cli.common import fail, location
from batch.config import Settings, load_settings
from batch.durations import format_duration, parse_duration
from batch.errors import AuditError, ConfigError, OutputError
from batch.logs import LOGGER, configure_logging, event
from batch.model import RunSummary
from batch.reports.metrics import write_metrics
from batch.run.audit import AuditRun, plan_counts
from batch.run.verdict import EXIT_OK, verdict
from batch.store.files import PRIVATE, parse_mode, private_dir
from batch.store.inputs import Plan

log = logging.getLogger(LOGGER)


@click.command()
@click.argument("input_text", metavar="INPUT")
@click.option(
    "--output",
    "-o",
    "output_template",
    required=True,
    help="Report (.parquet), a path or s3://bucket/key; may hold {date}, {time}, {datetime}, "
    "e.g. s3://audits/liveness/date={date}/part.parquet",
)
@click.option("--column", help="Column holding the session IDs [session_id].")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "csv", "parquet"]), help="Input format."
)
@click.option(
    "--rate", type=float, help="Maximum requests per second [unset: probe up to the quota]."
)
@click.option("--concurrency", type=int, help="Requests in flight at most [16].")
@click.option("--max-attempts", type=int, help="Attempts per session [10].")
@click.option("--endpoint-url", help="Rekognition endpoint (default: AWS's, or the env).")
@click.option("--region", help="AWS region (default: AWS_REGION / profile).")
@click.option("--profile", help="AWS profile (default: AWS_PROFILE / default chain).")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."
)
@click.option(
    "--save-images",
    metavar="DIR|s3://BUCKET/PREFIX",
    help="Write inline image bytes (biometric data) as owner-only files, or encrypted S3 objects.",
)
@click.option(
    "--verify-evidence",
    is_flag=True,
    default=None,
    help="Check that every image the service stored in S3 is still there (HEAD).",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path),
    help="Local state of S3-bound runs [$XDG_STATE_HOME or ~/.local/state, /liveness-audit].",
)
@click.option("--dry-run", is_flag=True, help="Read and validate the input, print the plan.")
@click.option("--fresh", is_flag=True, help="Ignore the checkpoint of an earlier run; refetch all.")
@click.option(
    "--time-budget",
    metavar="DURATION",
    help="Stop in good order after this long (e.g. 45m, 2h, 1h30m, 900s).",
)
@click.option("--no-progress", is_flag=True, help="Log lines instead of a progress bar.")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="Log lines as text or JSON."
)
@click.option("--timezone", help="Zone of {date}/{time} in the --output template [UTC].")
@click.option(
    "--metrics-file",
    type=click.Path(path_type=Path),
    help="Write Prometheus textfile metrics here at the end (atomically).",
)
@click.option(
    "--max-error-rate",
    type=float,
    help="Exit 4 when more than this share of sessions ended in errors.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run(  # one parameter per command-line option
    input_text: str,
    output_template: str,
    column: str | None,
    fmt: str | None,
    rate: float | None,
    concurrency: int | None,
    max_attempts: int | None,
    endpoint_url: str | None,
    region: str | None,
    profile: str | None,
    config_file: Path | None,
    save_images: str | None,
    verify_evidence: bool | None,
    work_dir: Path | None,
    dry_run: bool,
    fresh: bool,
    time_budget: str | None,
    no_progress: bool,
    log_format: str | None,
    timezone: str | None,
    metrics_file: Path | None,
    max_error_rate: float | None,
    log_level: str,
) -> None:
    """Fetch the results of every session ID in INPUT (.csv or .parquet; a path or s3://)."""
    flags: dict[str, Any] = {
        "column": column,
        "format": fmt,
        "rate": rate,
        "concurrency": concurrency,
        "max_attempts": max_attempts,
        "endpoint_url": endpoint_url,
        "region": region,
        "profile": profile,
        "save_images": save_images,
        "verify_evidence": verify_evidence,
        "work_dir": work_dir,
        "progress": False if no_progress else None,
        "log_format": log_format,
        "timezone": timezone,
        "metrics_file": metrics_file,
        "max_error_rate": max_error_rate,
    }
    try:
        budget = parse_duration(time_budget, "--time-budget") if time_budget else None
        settings = load_settings(config_file=config_file, flags=flags)
        configure_logging(log_level, settings.log_format)
        source = location(input_text, "INPUT")
        target = location(render_output(output_template, timezone=settings.timezone), "--output")
        if isinstance(target, Path) and not dry_run:  # noqa: SIM102  # the inner test: its own reason
            if target.parent != Path(output_template).parent:  # a {date} folder was made
                private_dir(target.parent, mode=parse_mode(settings.file_mode))
        audit = AuditRun(source, target, settings, fresh=fresh, budget=budget)
        if dry_run:  # only the plan: nothing is sent
            click.echo(_plan_text(asyncio.run(audit.dry_run()), settings))
            sys.exit(EXIT_OK)
        summary = asyncio.run(audit.run())
    except AuditError as error:
        code = fail(error)
        metrics = metrics_file or _maybe_settings(flags, config_file)
        if metrics is not None:
            _write_metrics_quietly(metrics, None, code)
        sys.exit(code)
    _report_end(summary, settings)


def _report_end(summary: RunSummary, settings: Settings) -> NoReturn:
    """The last lines of a run, its ``end`` event and its metrics; exits with its code."""
    ending = verdict(summary, settings.max_error_rate)
    click.echo(f"liveness-audit: {summary.line}")
    click.echo(
        f"report: {summary.report} (run {summary.run_id}, {summary.manifest.rows} rows, "
        f"rows_sha256 {summary.manifest.rows_sha256})"
    )
    if ending.error is not None:
        fail(ending.error)
    elif ending.message is not None:
        click.echo(f"liveness-audit: {ending.message}", err=True)
    _log_end(summary, ending.code)
    if settings.metrics_file is not None:
        mode = parse_mode(settings.file_mode)
        _write_metrics_quietly(settings.metrics_file, summary, ending.code, mode=mode)
    sys.exit(ending.code)


def _log_end(summary: RunSummary, code: int) -> None:
    """The run's ``end`` event in the log."""
    log.info(
        "end: exit %d: %s",
        code,
        summary.line,
        extra=event(
            "end",
            exit_code=code,
            run_id=summary.run_id,
            report=summary.report,
            rows=summary.manifest.rows,
            rows_sha256=summary.manifest.rows_sha256,
            input_sha256=summary.manifest.input_sha256,
            sessions=summary.sessions,
            by_status=summary.by_status,
            by_error=summary.by_error,
            requests=summary.requests,
            throttled=summary.throttled,
            wall_seconds=round(summary.wall, 3),
        ),
    )


def _maybe_settings(flags: dict[str, Any], config_file: Path | None) -> Path | None:
    """The metrics file of settings that may themselves be invalid (then None)."""
    try:
        return load_settings(config_file=config_file, flags=flags).metrics_file
    except AuditError:
        return None


def _write_metrics_quietly(
    path: Path, summary: RunSummary | None, code: int, *, mode: int = PRIVATE
) -> None:
    try:
        write_metrics(path, summary, code, mode=mode)
    except OutputError as exc:
        click.echo(f"liveness-audit: warning: {exc}", err=True)


def _plan_text(plan: Plan, settings: Settings) -> str:
    head = f"plan for {plan.origin} ({plan.format}, column {plan.column!r}): {plan_counts(plan)}"
    if settings.rate is None:
        pace = (
            f"at the rate the quota allows (starting at {settings.rate_start:g} requests/s "
            "and probing up; set --rate to your quota to start there)"
        )
    else:
        seconds = len(plan.valid) / settings.rate
        pace = f"at up to {settings.rate:g} requests/s (at least {format_duration(seconds)})"
    return f"{head}\nwould fetch {len(plan.valid)} sessions {pace}; nothing was sent (dry run)"


_PLACEHOLDER = re.compile(r"{([^{}]*)}")


def render_output(template: str, *, timezone: str, now: datetime | None = None) -> str:
    """Fill ``{date}``, ``{time}``, ``{datetime}`` of an output path (in ``timezone``)."""
    moment = (now or datetime.now(UTC)).astimezone(ZoneInfo(timezone))
    values = {
        "date": moment.strftime("%Y-%m-%d"),
        "time": moment.strftime("%H%M%S"),
        "datetime": moment.strftime("%Y-%m-%dT%H%M%S"),
    }
    unknown = [name for name in _PLACEHOLDER.findall(template) if name not in values]
    if unknown:
        raise ConfigError(
            f"invalid --output {template!r}: unknown placeholder {{{unknown[0]}}} "
            "(known: {date}, {time}, {datetime})"
        )
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
