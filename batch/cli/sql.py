"""``liveness-audit sql "SELECT ..." REPORTS...``: ad-hoc SQL over reports, out of core.

The reports (files, folders, globs, ``s3://`` objects or prefixes, staged as summarize
stages them) are the table ``liveness_audit``, with the view ``audit`` of ``queries.sql``
(outcome, direction, reason) over it, through the engine ``summarize`` uses. A name of
``queries.sql`` (``pass_rate_by_night``) runs that query. Results print as a table, or as
CSV with ``--format csv`` (the default in a pipe).
"""

from __future__ import annotations

import asyncio
import csv
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from batch.cli.common import fail
from batch.cli.options import settings_options
from batch.cli.summarize import given_threshold
from batch.config import Settings, load_settings
from batch.errors import AuditError
from batch.reports.engine import named_queries
from batch.reports.summary import open_reports


def _print(columns: list[str], rows: list[tuple[Any, ...]], form: str) -> None:
    if form == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(columns)
        out.writerows(["" if v is None else v for v in row] for row in rows)
        return
    table = Table(*columns, title_justify="left")
    for row in rows:
        table.add_row(*(escape("" if v is None else str(v)) for v in row))
    Console().print(table)


@click.command()
@click.argument("query")
@click.argument("reports", nargs=-1, required=True, metavar="REPORTS...")
@settings_options(Settings, "summarize")
@click.option(
    "--format",
    "form",
    type=click.Choice(["table", "csv"]),
    help="How to print the rows (default: a table on a terminal, CSV in a pipe).",
)
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."
)
def sql(
    query: str,
    reports: tuple[str, ...],
    form: str | None,
    config_file: Path | None,
    flags: dict[str, Any],
) -> None:
    """Run QUERY (SQL over liveness_audit and audit, or a name of queries.sql) on REPORTS."""
    try:
        settings = load_settings(config_file=config_file, flags=flags)
        text = named_queries().get(query.strip(), query)
        with tempfile.TemporaryDirectory(prefix="liveness-audit-sql-") as folder:
            threshold = given_threshold(flags, settings)
            engine = asyncio.run(open_reports(reports, settings, Path(folder), threshold=threshold))
            try:
                columns, rows = engine.result(text)
            finally:
                engine.close()
    except AuditError as error:
        sys.exit(fail(error))
    _print(columns, rows, form or ("table" if sys.stdout.isatty() else "csv"))
