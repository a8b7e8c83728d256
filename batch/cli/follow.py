"""``liveness-audit follow``: the capture service for new sessions (batch/follow/)."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from batch.aws.session import resolved_region
from batch.cli.common import early_log_format, fail, out, render_output
from batch.cli.options import settings_options
from batch.cli.preflight import (
    check_region,
    fixed_folder,
    make_output_folder,
    region_source,
)
from batch.config import Settings, load_settings
from batch.durations import parse_duration
from batch.errors import AuditError, ConfigError
from batch.follow.capture import Capture, FollowSummary
from batch.follow.daybook import Render
from batch.follow.queue import SqsQueue, parse_queue
from batch.logs import LOGGER, configure_logging, event, say
from batch.store.files import parse_mode
from batch.store.locations import Location, S3Url, parse_location
from batch.store.report import check_output
from batch.verdict import EXIT_OK

log = logging.getLogger(LOGGER)


@click.command()
@click.argument("source_text", metavar="SOURCE")
@click.option(
    "--output",
    "-o",
    "output_template",
    required=True,
    help="Report (.parquet), a path or s3://bucket/key; {date} gives one report per day "
    "(the day a session was first answered, in --timezone).",
)
@settings_options(Settings, "follow")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."
)
@click.option(
    "--time-budget",
    metavar="DURATION",
    help="Stop in good order after this long (e.g. 8h); unset: until SIGTERM/SIGINT.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def follow(
    source_text: str,
    output_template: str,
    config_file: Path | None,
    time_budget: str | None,
    log_level: str,
    flags: dict[str, Any],
) -> None:
    """Capture the results of new sessions while they exist.

    SOURCE is a folder or an s3://bucket/prefix/ where CSV or Parquet files of new session
    IDs are dropped, or sqs://QUEUE_URL receiving S3 notifications of such files; each
    new ID is asked at once, pending ones until they settle, and every answer goes to the
    day's report.
    """
    configure_logging(log_level, early_log_format(flags))
    try:
        budget = parse_duration(time_budget, "--time-budget") if time_budget else None
        settings = load_settings(config_file=config_file, flags=flags)
        configure_logging(log_level, settings.log_format)
        check_region(resolved_region(settings), region_source(settings))
        source = _source(source_text)
        timezone = settings.timezone

        def render(moment: datetime) -> str:
            return render_output(output_template, timezone=timezone, now=moment)

        target = parse_location(render(datetime.now().astimezone()), "--output")
        _prepare_target(target, output_template, mode=parse_mode(settings.file_mode))
        summary = asyncio.run(_serve(source, output_template, render, settings, budget))
    except AuditError as error:
        sys.exit(fail(error))
    except ValueError as exc:
        sys.exit(fail(ConfigError(f"invalid {exc}")))
    sys.exit(_end(summary))


async def _serve(  # the command's arguments, named
    source: Location | SqsQueue,
    template: str,
    render: Render,
    settings: Settings,
    budget: float | None,
) -> FollowSummary:
    async with Capture.open(source, template, render, settings, budget=budget) as capture:
        return await capture.run()


def _source(text: str) -> Location | SqsQueue:
    if text.startswith("sqs://"):  # S3 notifications from a queue
        return parse_queue(text)
    try:
        return parse_location(text, "SOURCE", object_key=False)
    except ValueError as exc:
        raise ConfigError(f"invalid {exc}") from None


def _prepare_target(target: Location, template: str, *, mode: int) -> None:
    """A local report's fixed folders are made now (a ``{date}`` folder on its day)."""
    if isinstance(target, S3Url):
        return
    fixed = fixed_folder(template)
    make_output_folder(fixed, mode=mode)
    if target.parent == fixed:  # no placeholder folder: the report goes here every day
        check_output(target)


def _end(summary: FollowSummary) -> int:
    """The closing lines and the exit code (as ``run``'s: 3 aborted, 1 not published)."""
    out(f"liveness-audit: {summary.figures.line()}")
    code = EXIT_OK
    error = summary.aborted or summary.publish_error
    if error is not None:
        code = fail(error)
    elif summary.stop_reason:
        say(f"stopped ({summary.stop_reason})", name="notice", exit_code=code)
    log.info(
        "end: exit %d",
        code,
        extra=event("end", exit_code=code, **summary.figures.as_dict()),
    )
    return code
