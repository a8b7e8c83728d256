"""``liveness-audit verify``: a report against its manifest, input and evidence."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path

import click

from batch.cli.common import fail, location
from batch.config import load_settings
from batch.errors import AuditError, ConfigError
from batch.evidence import Recheck
from batch.logs import LOGGER
from batch.reports.verify import verify_location
from batch.verdict import EXIT_ACCESS, EXIT_OK, EXIT_UNRESOLVED

log = logging.getLogger(LOGGER)


@click.command()
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
        report = location(report_text, "REPORT")
        source = location(input_text, "--input") if input_text else None
        if rows_sha256 is not None and not _SHA256.fullmatch(rows_sha256.lower()):
            raise ConfigError(f"invalid --sha256 {rows_sha256!r}: 64 hexadecimal digits")
        checks = verify_location(report, source, rows_sha256, evidence=evidence, settings=settings)
        checked = asyncio.run(checks)
    except AuditError as error:
        sys.exit(fail(error))
    result, recheck = checked.verification, checked.recheck
    for problem in (*result.problems, *(recheck.lines if recheck else ())):
        click.echo(f"liveness-audit: {report_text}: {problem}", err=True)
    if not result.ok:
        click.echo(f"{report_text}: NOT intact", err=True)
    else:
        and_input = " and the input" if source is not None else ""
        click.echo(
            f"{report_text}: intact: {result.rows} rows match the manifest{and_input} "
            f"(rows_sha256 {result.rows_sha256})"
        )
    for edit in checked.history:
        click.echo(f"history: {edit.describe()}")
    if recheck is not None:
        click.echo(f"evidence: {recheck.checked} objects looked at again: {_state(recheck)}")
    sys.exit(_exit_code(result.ok, recheck))


EXIT_UNCHECKED = 4  # verify only: some evidence could not be looked at; run again


def _exit_code(intact: bool, recheck: Recheck | None) -> int:
    """1 for anything not intact (wins), 3 for a refused HEAD, 4 for one S3 kept failing."""
    if not intact or (recheck is not None and recheck.problems):
        return EXIT_UNRESOLVED
    if recheck is not None and recheck.forbidden:
        return EXIT_ACCESS
    if recheck is not None and recheck.unchecked:
        return EXIT_UNCHECKED
    return EXIT_OK


def _state(recheck: Recheck) -> str:
    if not recheck.lines:
        return "all still in place"
    notes = [
        f"{len(recheck.forbidden)} refused by S3 (403)" if recheck.forbidden else "",
        f"{len(recheck.unchecked)} not answered after every retry" if recheck.unchecked else "",
    ]
    detail = "; ".join(note for note in notes if note)
    return f"{len(recheck.lines)} missing, changed or unreadable" + (
        f" ({detail})" if detail else ""
    )


_SHA256 = re.compile(r"[0-9a-f]{64}")
