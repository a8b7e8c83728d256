"""``liveness-audit doctor``: every check a run makes before its first call, each printed
with ✓ or ✗ and, when it fails, the fix.

It takes the settings a run takes (flags, ``--config``, ``LIVENESS_AUDIT_*``), so the
cron line's options can be pasted after it, and checks, in order: the settings, the
region, the credentials, access (one ``GetFaceLivenessSessionResults`` call for a random
ID, see :mod:`batch.cli.preflight`), and, when given, the output and the metrics file.
Nothing is written and no folder is made. The exit code is the one the first failed
check would give a run (2 settings, region, output; 3 credentials, access), else 0.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import click

from batch.aws.session import open_session, resolved_region
from batch.cli.common import location, out, render_output
from batch.cli.options import settings_options
from batch.cli.preflight import (
    Check,
    access_check,
    check_output_location,
    check_region,
    region_source,
)
from batch.config import Settings, load_settings
from batch.errors import AuditError
from batch.store.files import parse_mode
from batch.verdict import EXIT_OK, exit_code_for

__all__ = ["doctor"]


@click.command()
@click.option(
    "--output",
    "-o",
    "output_template",
    help="The report a run would write (as run's --output): its folder is checked too.",
)
@settings_options(Settings, "run")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."
)
def doctor(output_template: str | None, config_file: Path | None, flags: dict[str, Any]) -> None:
    """Check the settings, region, credentials and access a run needs; print each with
    ✓ or ✗ and the fix."""
    checks = _checks(config_file, flags, output_template)
    for check in checks:
        out(check.line())
    failed = [check for check in checks if not check.ok]
    if failed:
        out(f"{len(failed)} of {len(checks)} checks failed")
        sys.exit(failed[0].exit_code)
    out(f"all {len(checks)} checks passed")
    sys.exit(EXIT_OK)


def _failed(name: str, error: AuditError, fix: str) -> Check:
    return Check(name, False, str(error), fix, exit_code_for(error))


def _checks(config_file: Path | None, flags: dict[str, Any], template: str | None) -> list[Check]:
    """The checks in order; a failed settings check ends the list (nothing else is known)."""
    where = str(config_file) if config_file else "the built-in defaults, env and flags"
    try:
        settings = load_settings(config_file=config_file, flags=flags)
    except AuditError as error:
        return [_failed("settings", error, "correct the setting named above")]
    checks = [Check("settings", True, f"valid (from {where})")]
    checks.append(_region(settings))
    checks.append(asyncio.run(_credentials(settings)))
    if checks[-1].ok and checks[-2].ok:
        checks.append(asyncio.run(access_check(settings)))
    if template is not None:
        checks.append(_output(settings, template))
    if settings.metrics_file is not None:
        checks.append(_metrics(settings.metrics_file))
    return checks


def _region(settings: Settings) -> Check:
    fix = "pass --region (e.g. eu-west-1) or set AWS_REGION to the sessions' region"
    try:
        region = resolved_region(settings)
        source = region_source(settings)
        check_region(region, source)
    except AuditError as error:
        return _failed("region", error, fix)
    if region is None:
        return Check("region", False, "no AWS region configured", fix, 2)
    return Check("region", True, f"{region} (from {source})")


async def _credentials(settings: Settings) -> Check:
    fix = (
        "set AWS_PROFILE (or --profile), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run "
        "with an instance or task role"
    )
    try:
        session = await open_session(settings)
        found = await session.get_credentials()
    except AuditError as error:
        return _failed("credentials", error, fix)
    method = getattr(found, "method", None) or "the AWS chain"
    return Check("credentials", True, f"found ({method})")  # never the key itself


def _output(settings: Settings, template: str) -> Check:
    fix = "give an --output in a folder this user may write, ending in .parquet"
    try:
        text = render_output(template, timezone=settings.timezone)
        target = location(text, "--output")
        check_output_location(None, target, create=False, mode=parse_mode(settings.file_mode))
    except AuditError as error:
        return _failed("output", error, fix)
    return Check("output", True, f"{text} can be written (missing folders are made)")


def _metrics(path: Path) -> Check:
    folder = path.parent
    if folder.is_dir() and _writable(folder):
        return Check("metrics file", True, f"{path} can be written")
    fix = f"create {folder} writable by this user (the collector reads it)"
    return Check("metrics file", False, f"{folder} is missing or not writable", fix, 2)


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)
