"""The ``liveness-audit`` command: ``run`` an audit, or serve the local ``emulator``.

Exit codes (a contract, mapped in one place, :func:`exit_code_for`)::

    0  every session has a definitive answer (a status, or a per-session error)
    1  some sessions are unresolved (retries exhausted, or the run was stopped);
       they are in the report with their last error and a rerun retries them
    2  usage, configuration or input error: nothing was fetched
    3  aborted on an access or credential error; what was fetched is in the report
    4  every session answered, but more than --max-error-rate of them ended in errors
    5  every session answered, but stored audit evidence is missing or changed in S3
       for some (--verify-evidence; error_code EvidenceMissing / EvidenceChanged)

``liveness-audit verify`` exits 0 when a report matches its manifest (and, with
``--evidence``, every S3 image it found is unchanged), 1 when it does not, 2 when it
cannot be read, 3 when S3 refuses access.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console

from batch import __version__
from batch.audit import RunSummary
from batch.config import Settings, load_settings
from batch.errors import (
    AccessError,
    AuditError,
    ConfigError,
    OutputError,
    UsageError,
)
from batch.job import Job, plan_counts
from batch.locations import Location, parse_location
from batch.logs import LOGGER, configure_logging, event
from batch.metrics import write_metrics
from batch.progress import format_duration
from batch.report import check_output
from batch.sources import Plan
from batch.summary import flat_table, load_nights, render_html, render_terminal
from batch.verify import verify_location

__all__ = [
    "EXIT_ACCESS",
    "EXIT_ERROR_RATE",
    "EXIT_EVIDENCE",
    "EXIT_OK",
    "EXIT_UNRESOLVED",
    "EXIT_USAGE",
    "exit_code_for",
    "main",
    "render_output",
]

EXIT_OK, EXIT_UNRESOLVED, EXIT_USAGE, EXIT_ACCESS, EXIT_ERROR_RATE, EXIT_EVIDENCE = range(6)

log = logging.getLogger(LOGGER)

_ACCESS_HINTS = {
    "AccessDeniedException": "the caller may not call rekognition:GetFaceLivenessSessionResults;"
    " grant it in the IAM policy of this user or role",
    "ExpiredTokenException": "the session token has expired; refresh the credentials"
    " (aws sso login, or a new role session) and rerun: finished sessions are kept",
    "UnrecognizedClientException": "the access key is not recognised; check AWS_ACCESS_KEY_ID"
    " or the profile",
    "InvalidSignatureException": "the secret key does not match the access key",
    "RequestExpired": "the request signature expired; check the machine's clock",
    "NoCredentials": "no credentials were found by the AWS credential chain",
    "AccessDenied": "S3 refused the caller; see the IAM permissions in the README",
    "403": "S3 refused the caller; see the IAM permissions in the README",
}


def exit_code_for(  # noqa: PLR0911  # the exit-code table, one return per row
    outcome: RunSummary | BaseException, max_error_rate: float | None = None
) -> int:
    """The one mapping from how a run ended to the process exit code."""
    if isinstance(outcome, UsageError):
        return EXIT_USAGE
    if isinstance(outcome, AccessError):
        return EXIT_ACCESS
    if isinstance(outcome, BaseException):
        return EXIT_UNRESOLVED
    if outcome.aborted is not None or isinstance(outcome.publish_error, AccessError):
        return EXIT_ACCESS
    if outcome.unresolved or outcome.not_attempted or outcome.publish_error is not None:
        return EXIT_UNRESOLVED
    if outcome.evidence_problems:
        return EXIT_EVIDENCE
    if max_error_rate is not None and outcome.errors > max_error_rate * max(1, outcome.sessions):
        return EXIT_ERROR_RATE
    return EXIT_OK


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


def _fail(error: AuditError) -> int:
    message = str(error)
    if isinstance(error, AccessError):
        hint = _ACCESS_HINTS.get(error.code)
        message = f"aborted: {message}" + (f" ({hint})" if hint else "")
    click.echo(f"liveness-audit: error: {message}", err=True)
    code = exit_code_for(error)
    log.debug("error: %s", message, extra=event("error", message=message, exit_code=code))
    return code


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="liveness-audit")
def main() -> None:
    """Audit Amazon Rekognition Face Liveness sessions into a Parquet report."""


@main.command()
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
    summary: RunSummary | None = None
    try:
        budget = parse_duration(time_budget, "--time-budget") if time_budget else None
        settings = load_settings(config_file=config_file, flags=flags)
        configure_logging(log_level, settings.log_format)
        source = _location(input_text, "INPUT")
        target = _location(render_output(output_template, timezone=settings.timezone), "--output")
        if isinstance(target, Path) and not dry_run:
            if str(target) != output_template:  # a dated folder of a nightly template
                target.parent.mkdir(parents=True, exist_ok=True)
            check_output(target)
        job = Job(source, target, settings, fresh=fresh, budget=budget)
        outcome = asyncio.run(job.run(dry_run=dry_run))
        if isinstance(outcome, Plan):  # a dry run: nothing was sent
            click.echo(_plan_text(outcome, settings))
            sys.exit(EXIT_OK)
        summary = outcome
    except AuditError as error:
        code = _fail(error)
        metrics = metrics_file or _maybe_settings(flags, config_file)
        if metrics is not None:
            _write_metrics_quietly(metrics, None, code)
        sys.exit(code)
    code = exit_code_for(summary, settings.max_error_rate)
    _report_end(summary, settings, code)
    if settings.metrics_file is not None:
        _write_metrics_quietly(settings.metrics_file, summary, code)
    sys.exit(code)


def _location(text: str, name: str) -> Location:
    try:
        return parse_location(text, name)
    except ValueError as exc:
        raise ConfigError(f"invalid {exc}") from None


def _report_end(summary: RunSummary, settings: Settings, code: int) -> None:
    """The last lines of a run on the terminal, and its ``end`` event in the log."""
    click.echo(f"liveness-audit: {summary.line}")
    click.echo(
        f"report: {summary.report} (run {summary.run_id}, {summary.manifest.rows} rows, "
        f"rows_sha256 {summary.manifest.rows_sha256})"
    )
    if summary.aborted is not None:
        _fail(summary.aborted)
    elif summary.publish_error is not None:
        _fail(summary.publish_error)
    elif summary.unresolved or summary.not_attempted:
        left = summary.unresolved + summary.not_attempted
        stopped = f"run stopped ({summary.stop_reason}); " if summary.stop_reason else ""
        click.echo(
            f"liveness-audit: {stopped}{left} sessions unresolved (see error_code in the "
            "report); a rerun of the same command retries them and keeps the rest",
            err=True,
        )
    elif code == EXIT_EVIDENCE:
        click.echo(
            f"liveness-audit: stored evidence is missing or changed for "
            f"{summary.evidence_problems} sessions (error_code EvidenceMissing / "
            "EvidenceChanged in the report)",
            err=True,
        )
    elif code == EXIT_ERROR_RATE:
        click.echo(
            f"liveness-audit: {summary.errors} of {summary.sessions} sessions ended in errors,"
            f" more than --max-error-rate {settings.max_error_rate:g} allows",
            err=True,
        )
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


def _write_metrics_quietly(path: Path, summary: RunSummary | None, code: int) -> None:
    try:
        write_metrics(path, summary, code)
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


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str, name: str) -> float:
    """``90``, ``90s``, ``45m``, ``2h``, ``1h30m`` -> seconds; ConfigError naming ``name``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ConfigError(f"invalid {name} {text!r}: use e.g. 900s, 45m, 2h or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ConfigError(f"invalid {name} {text!r}: must be longer than zero")
    return total


@main.command()
@click.argument("report_text", metavar="REPORT")
@click.option(
    "--input",
    "input_text",
    metavar="INPUT",
    help="The input the report was made from (path or s3://); its SHA-256 must match.",
)
@click.option(
    "--sha256",
    "rows_sha256",
    metavar="DIGEST",
    help="The rows_sha256 the run printed and logged; the report must still carry it.",
)
@click.option(
    "--evidence",
    is_flag=True,
    help="Also look again at every S3 image the report found present: gone or changed since?",
)
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."
)
def verify(
    report_text: str,
    input_text: str | None,
    rows_sha256: str | None,
    evidence: bool,
    config_file: Path | None,
) -> None:
    """Check that REPORT (a path or s3://) holds exactly the rows liveness-audit wrote."""
    try:
        settings = load_settings(config_file=config_file, flags={})
        report = _location(report_text, "REPORT")
        source = _location(input_text, "--input") if input_text else None
        if rows_sha256 is not None and not _SHA256.fullmatch(rows_sha256.lower()):
            raise ConfigError(f"invalid --sha256 {rows_sha256!r}: 64 hexadecimal digits")
        checks = verify_location(report, source, rows_sha256, evidence=evidence, settings=settings)
        result, recheck = asyncio.run(checks)
    except AuditError as error:
        sys.exit(_fail(error))
    problems = [*result.problems, *(recheck.problems if recheck else ())]
    for problem in problems:
        click.echo(f"liveness-audit: {report_text}: {problem}", err=True)
    if not result.ok:
        click.echo(f"{report_text}: NOT intact", err=True)
    else:
        checked = " and the input" if source is not None else ""
        click.echo(
            f"{report_text}: intact: {result.rows} rows match the manifest{checked} "
            f"(rows_sha256 {result.rows_sha256})"
        )
    if recheck is not None:
        bad = len(recheck.problems)
        state = f"{bad} missing, changed or unreadable" if bad else "all still in place"
        click.echo(f"evidence: {recheck.checked} objects looked at again: {state}")
    sys.exit(EXIT_UNRESOLVED if problems else EXIT_OK)


_SHA256 = re.compile(r"[0-9a-f]{64}")


@main.command()
@click.argument("reports", nargs=-1, required=True, metavar="REPORTS...")
@click.option("--threshold", type=float, help="Confidence that passes [80, from the config].")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Flat table as CSV.")
@click.option("--xlsx", "xlsx_path", type=click.Path(path_type=Path), help="Flat table as XLSX.")
@click.option(
    "--html", "html_path", type=click.Path(path_type=Path), help="Self-contained HTML report."
)
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."
)
def summarize(
    reports: tuple[str, ...],
    threshold: float | None,
    csv_path: Path | None,
    xlsx_path: Path | None,
    html_path: Path | None,
    config_file: Path | None,
) -> None:
    """Summarise REPORTS (files, folders, globs or s3:// prefixes of nightly reports)."""
    try:
        settings = load_settings(config_file=config_file, flags={"threshold": threshold})
        for path, suffix, option in ((csv_path, ".csv", "--csv"), (xlsx_path, ".xlsx", "--xlsx")):
            if path is not None and path.suffix.lower() != suffix:
                raise ConfigError(f"invalid {option} {str(path)!r}: the file must end in {suffix}")
        with tempfile.TemporaryDirectory(prefix="liveness-audit-summary-") as folder:
            nights = asyncio.run(load_nights(reports, settings, Path(folder)))
        nights.sort(key=lambda night: (night.when, night.source))
        render_terminal(nights, settings.threshold, Console())
        for path, write in ((csv_path, "to_csv"), (xlsx_path, "to_excel")):
            if path is not None:
                try:
                    getattr(flat_table(nights), write)(path, index=False)
                except OSError as exc:
                    raise OutputError(f"cannot write {path}: {exc}") from None
                click.echo(f"wrote {path}")
        if html_path is not None:
            try:
                html_path.write_text(render_html(nights, settings.threshold), encoding="utf-8")
            except OSError as exc:
                raise OutputError(f"cannot write {html_path}: {exc}") from None
            click.echo(f"wrote {html_path}")
    except AuditError as error:
        sys.exit(_fail(error))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=0, show_default=True, type=int, help="Port (0: any free).")
@click.option("--tps", type=float, help="Quota: token-bucket refill per second (no quota).")
@click.option("--burst", type=float, help="Quota: bucket capacity [max(1, tps/10)].")
@click.option("--sessions", default=1000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--latency", default=0.0, show_default=True, type=float, help="Seconds per call.")
@click.option("--error-rate", default=0.0, show_default=True, type=float, help="Share of 500s.")
@click.option("--drop-rate", default=0.0, show_default=True, type=float, help="Share dropped.")
@click.option(
    "--throttle-error",
    type=click.Choice(["ThrottlingException", "ProvisionedThroughputExceededException", "mixed"]),
    default="ThrottlingException",
    show_default=True,
)
@click.option("--expire-after", type=float, help="Sessions older than this many s: EXPIRED.")
@click.option(
    "--write-input",
    type=click.Path(path_type=Path),
    help="Write the population's IDs to this .csv/.parquet file.",
)
@click.option(
    "--url-file", type=click.Path(path_type=Path), help="Write the URL here once listening."
)
def emulator(
    host: str,
    port: int,
    tps: float | None,
    burst: float | None,
    sessions: int,
    seed: int,
    latency: float,
    error_rate: float,
    drop_rate: float,
    throttle_error: str,
    expire_after: float | None,
    write_input: Path | None,
    url_file: Path | None,
) -> None:
    """Serve a local Rekognition endpoint with a synthetic population, quota and faults."""
    from batch.emulator import EmulatorSettings, serve  # noqa: PLC0415  # only this command

    try:
        settings = EmulatorSettings(
            sessions=sessions,
            seed=seed,
            tps=tps,
            burst=burst,
            latency=latency,
            error_rate=error_rate,
            drop_rate=drop_rate,
            throttle_error=throttle_error,  # type: ignore[arg-type]  # click checked the choice
            expire_after=expire_after,
        )
    except ValueError as exc:
        click.echo(f"liveness-audit emulator: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        asyncio.run(
            serve(settings, host=host, port=port, url_file=url_file, write_input_path=write_input)
        )
    except OSError as exc:
        click.echo(f"liveness-audit emulator: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
