"""The reports as an Athena (Trino) table: ``liveness-audit schema --athena s3://B/P/``.

When one machine is not enough, the hive-partitioned reports in S3
(``s3://B/P/date=YYYY-MM-DD/*.parquet``, as ``run --output .../date={date}/...`` and
``follow`` write them) are queried where they are. :func:`athena_ddl` prints

- ``CREATE EXTERNAL TABLE <table>_reports``: the report's columns with their Hive types
  (from the same Arrow schema the writer uses, so the types cannot drift), partitioned by
  ``date`` with partition projection (no ``MSCK REPAIR``, no crawler: every day from
  ``since`` to today is a partition);
- ``CREATE OR REPLACE VIEW <table>``: those rows with ``threshold`` and ``report`` (the
  file), the shape ``queries.sql`` reads in DuckDB too; then run ``queries.sql``'s
  ``audit`` view and its queries as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from batch.store.report import RECONCILED_FIELDS, REGION_FIELD, SCHEMA

__all__ = ["athena_ddl", "hive_type"]


def hive_type(kind: pa.DataType) -> str:
    """The Hive/Athena type of an Arrow type of the report."""
    simple = {
        pa.string(): "string",
        pa.large_string(): "string",
        pa.float64(): "double",
        pa.float32(): "float",
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.int16(): "smallint",
        pa.int8(): "tinyint",
        pa.bool_(): "boolean",
        pa.date32(): "date",
    }
    if kind in simple:
        return simple[kind]
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"array<{hive_type(kind.value_type)}>"
    if pa.types.is_struct(kind):
        fields = ",".join(f"{f.name}:{hive_type(f.type)}" for f in kind)
        return f"struct<{fields}>"
    raise ValueError(f"no Athena type for the report's {kind}")


def _name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def athena_ddl(
    location: str,
    *,
    table: str = "liveness_audit",
    kept: Sequence[pa.Field] = (),
    threshold: float = 80.0,
    since: str = "2024-01-01",
) -> str:
    """The table over the reports under ``location`` (``s3://bucket/prefix/``), the view."""
    base = location if location.endswith("/") else location + "/"
    fields = [*SCHEMA, REGION_FIELD, *kept, *RECONCILED_FIELDS]
    columns = ",\n".join(f"  {_name(f.name)} {hive_type(f.type)}" for f in fields)
    properties = {
        "projection.enabled": "true",
        "projection.date.type": "date",
        "projection.date.format": "yyyy-MM-dd",
        "projection.date.range": f"{since},NOW",
        "projection.date.interval": "1",
        "projection.date.interval.unit": "DAYS",
        "storage.location.template": base + "date=${date}/",
    }
    said = ",\n".join(f"  '{k}' = '{v}'" for k, v in properties.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {table}_reports (\n{columns}\n)\n"
        "PARTITIONED BY (`date` string)\n"
        "STORED AS PARQUET\n"
        f"LOCATION '{base}'\n"
        f"TBLPROPERTIES (\n{said}\n);\n\n"
        f"CREATE OR REPLACE VIEW {table} AS\n"
        f'SELECT *, CAST({threshold!r} AS double) AS threshold, "$path" AS report\n'
        f"FROM {table}_reports;\n"
    )
