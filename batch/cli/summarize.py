"""``liveness-audit summarize``: reports into tables, spreadsheets and a page."""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from batch.cli.common import fail
from batch.cli.options import settings_options
from batch.config import Settings, load_settings
from batch.errors import AuditError, ConfigError, OutputError
from batch.logs import LOGGER
from batch.reports.export import write_csv, write_xlsx
from batch.reports.html import render_html
from batch.reports.summary import flat_table, load_nights, render_terminal

log = logging.getLogger(LOGGER)


@click.command()
@click.argument("reports", nargs=-1, required=True, metavar="REPORTS...")
@settings_options(Settings, "summarize")
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
    csv_path: Path | None,
    xlsx_path: Path | None,
    html_path: Path | None,
    config_file: Path | None,
    flags: dict[str, Any],
) -> None:
    """Summarise REPORTS (files, folders, globs or s3:// prefixes of nightly reports)."""
    try:
        settings = load_settings(config_file=config_file, flags=flags)
        for path, suffix, option in ((csv_path, ".csv", "--csv"), (xlsx_path, ".xlsx", "--xlsx")):
            if path is not None and path.suffix.lower() != suffix:
                raise ConfigError(f"invalid {option} {str(path)!r}: the file must end in {suffix}")
        with tempfile.TemporaryDirectory(prefix="liveness-audit-summary-") as folder:
            nights = asyncio.run(load_nights(reports, settings, Path(folder)))
        nights.sort(key=lambda night: (night.when, night.source))
        render_terminal(nights, settings.threshold, Console())
        for path, write in ((csv_path, write_csv), (xlsx_path, write_xlsx)):
            if path is not None:
                write(flat_table(nights), path)
                click.echo(f"wrote {path}")
        if html_path is not None:
            try:
                html_path.write_text(render_html(nights, settings.threshold), encoding="utf-8")
            except OSError as exc:
                raise OutputError(f"cannot write {html_path}: {exc}") from None
            click.echo(f"wrote {html_path}")
    except AuditError as error:
        sys.exit(fail(error))
