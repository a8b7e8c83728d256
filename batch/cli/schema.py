"""``liveness-audit schema --athena s3://bucket/prefix/``: the reports as an Athena table."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq

from batch.cli.common import fail
from batch.errors import AuditError, ConfigError, InputError
from batch.reports.athena import athena_ddl
from batch.reports.engine import REPORT_FIELDS
from batch.store.locations import parse_s3_url

_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,127}")
_KNOWN = frozenset(f.name for f in REPORT_FIELDS)


def _kept(like: Path | None) -> list[pa.Field]:
    """The input columns a report kept (``--like REPORT``), with their types."""
    if like is None:
        return []
    try:
        with like.open("rb") as f:
            schema = pq.read_schema(f)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read --like {like} as a report: {exc}") from None
    return [field for field in schema if field.name not in _KNOWN]


@click.command()
@click.option(
    "--athena",
    "location",
    required=True,
    metavar="s3://BUCKET/PREFIX/",
    help="Where the date=YYYY-MM-DD/ folders of reports are.",
)
@click.option("--table", default="liveness_audit", show_default=True, help="The view's name.")
@click.option(
    "--like",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A report whose kept input columns (--keep-columns) the table should have.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 100),
    default=80.0,
    show_default=True,
    help="Confidence that passes, in the view.",
)
@click.option(
    "--since", default="2024-01-01", show_default=True, help="The first night (YYYY-MM-DD)."
)
def schema(location: str, table: str, like: Path | None, threshold: float, since: str) -> None:
    """Print the CREATE EXTERNAL TABLE (partition projection on date) and the view."""
    try:
        try:
            parse_s3_url(location, "--athena")
        except ValueError as exc:
            raise ConfigError(f"invalid {exc}") from None
        if not _TABLE.fullmatch(table):
            raise ConfigError(f"invalid --table {table!r}: lower-case letters, digits and _")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", since):
            raise ConfigError(f"invalid --since {since!r}: a date, YYYY-MM-DD")
        ddl = athena_ddl(location, table=table, kept=_kept(like), threshold=threshold, since=since)
    except AuditError as error:
        sys.exit(fail(error))
    click.echo(ddl, nl=False)
