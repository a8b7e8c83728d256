"""``liveness-audit run``: the audit of one input into one report."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from batch.aws.session import open_session, resolved_region
from batch.cli.common import early_log_format, fail, location, out, plural, render_output
from batch.cli.options import settings_options
from batch.cli.preflight import (
    check_output_location,
    check_region,
    probe_access,
    region_source,
)
from batch.config import Settings, load_settings
from batch.durations import format_duration, parse_duration
from batch.errors import AuditError, ConfigError, OutputError
from batch.logs import LOGGER, configure_logging, event, say
from batch.model import RunSummary
from batch.reports.metrics import write_metrics
from batch.run.audit import AuditRun, plan_counts
from batch.store.files import parse_mode
from batch.store.inputs import Plan
from batch.verdict import EXIT_OK, verdict

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
@settings_options(Settings, "run")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check everything a run checks (settings, region, credentials, input, output) and "
    "print the plan; nothing is sent (but --check-access) or written.",
)
@click.option(
    "--check-access",
    is_flag=True,
    help="Before anything else, one GetFaceLivenessSessionResults call for a random ID: "
    "SessionNotFoundException proves the credentials, permission, region and endpoint.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Ask every session of the input again (a kept result is never replaced by a "
    "less informative answer; nothing is deleted).",
)
@click.option(
    "--merge-journal",
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Merge the answers of a journal (REPORT.journal) written under another endpoint "
    "or region spelling into this run: its rows are answers, never thrown away.",
)
@click.option(
    "--time-budget",
    metavar="DURATION",
    help="Stop in good order after this long (e.g. 45m, 2h, 1h30m, 900s): no new request "
    "after it, in-flight ones finish.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def run(
    input_text: str,
    output_template: str,
    config_file: Path | None,
    dry_run: bool,
    check_access: bool,
    fresh: bool,
    merge_journal: Path | None,
    time_budget: str | None,
    log_level: str,
    flags: dict[str, Any],
) -> None:
    """Fetch the results of every session ID in INPUT (.csv or .parquet; a path or s3://)."""
    configure_logging(log_level, early_log_format(flags))
    try:
        budget = parse_duration(time_budget, "--time-budget") if time_budget else None
        settings = load_settings(config_file=config_file, flags=flags)
        configure_logging(log_level, settings.log_format)
        source = location(input_text, "INPUT")
        target = location(render_output(output_template, timezone=settings.timezone), "--output")
        mode = parse_mode(settings.file_mode)
        check_region(resolved_region(settings), region_source(settings))
        check_output_location(source, target, create=not dry_run, mode=mode)
        if check_access:
            log.info("access: %s", asyncio.run(probe_access(settings)))
        audit = AuditRun(
            source,
            target,
            settings,
            fresh=fresh,
            budget=budget,
            template=output_template,
            merge_journal=None if merge_journal is None else merge_journal.expanduser(),
        )
        if dry_run:  # only the plan: nothing is sent
            plan = asyncio.run(audit.dry_run())
            asyncio.run(_dry_checks(settings))
            out(_plan_text(plan, settings, checked_access=check_access))
            sys.exit(EXIT_OK)
        summary = asyncio.run(audit.run())
    except AuditError as error:
        code = fail(error)
        metrics = flags.get("metrics_file") or _maybe_settings(flags, config_file)
        if metrics is not None:
            _write_metrics_quietly(metrics, None, code, mode=_metrics_mode(flags, config_file))
        sys.exit(code)
    _report_end(summary, settings)


async def _dry_checks(settings: Settings) -> None:
    """What a run needs before its first call: a region (unless per row) and credentials."""
    if settings.region_column is None and resolved_region(settings) is None:
        raise ConfigError(
            "invalid setting 'region': no AWS region configured; pass --region or set AWS_REGION"
        )
    await open_session(settings)  # CredentialsError when the chain finds none


def _report_end(summary: RunSummary, settings: Settings) -> NoReturn:
    """The last lines of a run, its ``end`` event and its metrics; exits with its code."""
    ending = verdict(
        summary, settings.max_error_rate, fail_on_disagreement=settings.fail_on_disagreement
    )
    out(f"liveness-audit: {summary.line}")
    if summary.reconciliation is not None:
        out(f"liveness-audit: {summary.reconciliation.line()}")
    if summary.kept_conflicts:
        out(
            f"liveness-audit: {plural(summary.kept_conflicts, 'repeated session ID')} had "
            "other values in the kept columns than their first row (the first row's are in "
            "the report)"
        )
    out(
        f"report: {summary.report} (run {summary.run_id}, {summary.manifest.rows} rows, "
        f"rows_sha256 {summary.manifest.rows_sha256})"
    )
    if ending.error is not None:
        fail(ending.error)
    elif ending.message is not None:
        say(ending.message, name="notice", exit_code=ending.code)
    _log_end(summary, ending.code)
    if settings.metrics_file is not None:
        mode = parse_mode(settings.metrics_file_mode)
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
            quota=None if summary.quota is None else summary.quota.as_dict(),
            wall_seconds=round(summary.wall, 3),
            **_reconciled(summary),
        ),
    )


def _reconciled(summary: RunSummary) -> dict[str, int]:
    """The ``end`` event's reconciliation counts (none without --app-decision-column)."""
    counts = {"kept_conflicts": summary.kept_conflicts} if summary.kept_conflicts else {}
    found = summary.reconciliation
    if found is not None:
        counts.update(
            agreed=found.agreed,
            disagreed=found.disagreed,
            unverifiable=found.unverifiable,
            bad_app_input=found.bad_input,
        )
    return counts


def _maybe_settings(flags: dict[str, Any], config_file: Path | None) -> Path | None:
    """The metrics file of settings that may themselves be invalid (then None)."""
    try:
        return load_settings(config_file=config_file, flags=flags).metrics_file
    except AuditError:
        return None


def _metrics_mode(flags: dict[str, Any], config_file: Path | None) -> int:
    """The metrics file's mode of settings that may be invalid (then the default's)."""
    try:
        text = load_settings(config_file=config_file, flags=flags).metrics_file_mode
    except AuditError:
        text = Settings.model_fields["metrics_file_mode"].default
    return parse_mode(text)


def _write_metrics_quietly(path: Path, summary: RunSummary | None, code: int, *, mode: int) -> None:
    try:
        write_metrics(path, summary, code, mode=mode)
    except OutputError as exc:
        say(f"warning: {exc}", name="warning")


def _plan_text(plan: Plan, settings: Settings, *, checked_access: bool = False) -> str:
    head = f"plan for {plan.origin} ({plan.format}, column {plan.column!r}): {plan_counts(plan)}"
    if settings.rate is None:
        pace = (
            f"at the rate the quota allows (starting at {settings.rate_start:g} requests/s "
            "and probing up; set --rate to your quota to start there)"
        )
    else:
        seconds = len(plan.valid) / settings.rate
        pace = f"at up to {settings.rate:g} requests/s (at least {format_duration(seconds)})"
    sent = "one access check was sent" if checked_access else "nothing was sent"
    return f"{head}\nwould fetch {len(plan.valid)} sessions {pace}; {sent} (dry run)"
