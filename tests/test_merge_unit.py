"""The columnar merge on its own: schema union, casts, conform, stream_merge over local
files (no emulator, no moto)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.model import Status
from batch.store.ledger import Ledger
from batch.store.merge import SchemaError, conform, merged_schema, read_base, rows_for, stream_merge
from batch.store.report import SCHEMA, ReportWriter
from batch.store.row import Row

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def write(path: Path, rows: list[Row], schema: pa.Schema = SCHEMA) -> Path:
    writer = ReportWriter(path, schema=schema)
    for row in rows:
        writer.add(row)
    writer.commit({}, input_sha256="0" * 64)
    return path


def test_a_column_only_the_report_has_is_kept_after_the_runs_columns() -> None:
    base = pa.schema([*SCHEMA, pa.field("customer_ref", pa.string())])
    merged = merged_schema(base, SCHEMA)
    assert merged.names == [*SCHEMA.names, "customer_ref"]


def test_a_narrower_type_in_the_run_takes_the_reports_wider_one() -> None:
    base = pa.schema([*SCHEMA, pa.field("ref", pa.int64())])
    run = pa.schema([*SCHEMA, pa.field("ref", pa.int32())])
    assert merged_schema(base, run).field("ref").type == pa.int64()


def test_a_type_change_that_would_lose_values_is_refused_naming_both_types() -> None:
    base = pa.schema([*SCHEMA, pa.field("ref", pa.int64())])
    run = pa.schema([*SCHEMA, pa.field("ref", pa.string())])
    with pytest.raises(SchemaError, match="'ref' is int64 in the report and string in this run"):
        merged_schema(base, run)


def test_no_report_merges_into_the_runs_schema_as_it_is() -> None:
    assert merged_schema(None, SCHEMA) is SCHEMA


def test_an_older_reports_batch_is_conformed_with_its_missing_columns_empty() -> None:
    old = pa.RecordBatch.from_pylist(
        [{"session_id": "a", "status": "SUCCEEDED"}],
        schema=pa.schema([pa.field("session_id", pa.string()), pa.field("status", pa.string())]),
    )
    batch = conform(old, SCHEMA)
    assert batch.schema.names == SCHEMA.names
    row = batch.to_pylist()[0]
    assert row["attempts"] == 0
    assert row["audit_image_count"] == 0
    assert row["audit_images"] == []
    assert row["confidence"] is None


def test_held_rows_replace_the_reports_rows_in_place_and_new_ones_follow(tmp_path: Path) -> None:
    first = [Row(sid, status=Status.CREATED, fetched_at=T0) for sid in ("a", "b", "c")]
    report = write(tmp_path / "r.parquet", first)
    base = read_base(report)
    assert base.rows == 3
    ledger = Ledger(rows_for(base, {"b"}))
    ledger.add(Row("b", status=Status.SUCCEEDED, confidence=90.0, fetched_at=T0))
    ledger.add(Row("d", status=Status.EXPIRED, fetched_at=T0))
    out = tmp_path / "out.parquet"
    writer = ReportWriter(out, schema=merged_schema(base.schema, SCHEMA))
    stream_merge(writer, base, ledger)
    writer.commit({}, input_sha256="0" * 64)
    rows = pq.read_table(out).to_pylist()
    assert [(r["session_id"], r["status"]) for r in rows] == [
        ("a", "CREATED"),
        ("b", "SUCCEEDED"),
        ("c", "CREATED"),
        ("d", "EXPIRED"),
    ]
