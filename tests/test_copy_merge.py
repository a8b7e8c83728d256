"""A merge that only adds rows copies the report's row groups as they are (issue 19: such a
merge costs what reading the report costs), and the digest read a column at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.errors import OutputError
from batch.model import Status
from batch.store.ledger import Ledger
from batch.store.manifest import RowDigest, verify_report
from batch.store.merge import merged_schema, read_base, rows_for, stream_merge
from batch.store.report import SCHEMA, ReportWriter
from batch.store.row import Row

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def write(path: Path, rows: list[Row], schema: pa.Schema = SCHEMA) -> Path:
    writer = ReportWriter(path, schema=schema, batch_rows=2)  # row groups of 16 rows
    for row in rows:
        writer.add(row)
    writer.commit({"run": "first"}, input_sha256="0" * 64)
    return path


def rows(n: int, status: Status = Status.CREATED, prefix: str = "s") -> list[Row]:
    return [
        Row(f"{prefix}{i:03}", status=status, confidence=float(i), fetched_at=T0) for i in range(n)
    ]


def merge(report: Path, out: Path, added: list[Row], schema: pa.Schema = SCHEMA) -> Path:
    base = read_base(report)
    ledger = Ledger(rows_for(base, {row.session_id for row in added}))
    for row in added:
        ledger.add(row)
    writer = ReportWriter(out, schema=merged_schema(base.schema, schema), batch_rows=2)
    try:
        stream_merge(writer, base, ledger)
    except BaseException:
        writer.abandon()  # as a run does
        raise
    writer.commit({"run": "second"}, input_sha256="1" * 64)
    return out


def data_end(path: Path) -> int:
    """Where the Parquet file's footer begins."""
    raw = path.read_bytes()
    return len(raw) - 8 - int.from_bytes(raw[-8:-4], "little")


def test_a_merge_that_only_adds_rows_copies_the_reports_row_groups_byte_for_byte(
    tmp_path: Path,
) -> None:
    report = write(tmp_path / "r.parquet", rows(40))
    assert pq.read_metadata(report).num_row_groups == 3
    out = merge(report, tmp_path / "out.parquet", rows(5, Status.SUCCEEDED, prefix="n"))
    end = data_end(report)
    assert out.read_bytes()[:end] == report.read_bytes()[:end]
    table = pq.read_table(out)
    assert table.column("session_id").to_pylist() == [f"s{i:03}" for i in range(40)] + [
        f"n{i:03}" for i in range(5)
    ]
    assert table.slice(0, 40).to_pylist() == pq.read_table(report).to_pylist()
    assert set(table.column("status").to_pylist()[40:]) == {"SUCCEEDED"}


def test_a_copied_report_verifies_intact_under_its_new_provenance(tmp_path: Path) -> None:
    report = write(tmp_path / "r.parquet", rows(40))
    out = merge(report, tmp_path / "out.parquet", rows(3, prefix="n"))
    verification = verify_report(out)
    assert verification.ok, verification.problems
    assert verification.rows == 43
    metadata = pq.read_metadata(out)
    assert metadata.num_rows == 43
    assert b'"second"' in metadata.metadata[b"liveness_audit"]
    whole = RowDigest()
    whole.update(pq.read_table(out))
    assert whole.hexdigest() == verification.rows_sha256


def test_a_merge_of_no_new_rows_copies_the_report_whole(tmp_path: Path) -> None:
    report = write(tmp_path / "r.parquet", rows(20))
    out = merge(report, tmp_path / "out.parquet", [])
    end = data_end(report)
    assert out.read_bytes()[:end] == report.read_bytes()[:end]
    assert pq.read_table(out).to_pylist() == pq.read_table(report).to_pylist()
    assert verify_report(out).ok


def test_a_merge_that_replaces_a_row_rewrites_it_where_it_stands(tmp_path: Path) -> None:
    report = write(tmp_path / "r.parquet", rows(40))
    answer = Row("s001", status=Status.SUCCEEDED, confidence=99.0, fetched_at=T0)
    out = merge(report, tmp_path / "out.parquet", [answer, *rows(2, prefix="n")])
    table = pq.read_table(out)
    assert table.num_rows == 42
    assert table.column("session_id").to_pylist()[:3] == ["s000", "s001", "s002"]
    assert table.column("status").to_pylist()[1] == "SUCCEEDED"
    assert verify_report(out).ok


def test_a_run_that_adds_a_column_rewrites_the_report_with_it_empty(tmp_path: Path) -> None:
    report = write(tmp_path / "r.parquet", rows(20))
    wider = pa.schema([*SCHEMA, pa.field("customer_ref", pa.string())])
    out = merge(report, tmp_path / "out.parquet", rows(2, prefix="n"), schema=wider)
    table = pq.read_table(out)
    assert table.schema.names == wider.names
    assert table.column("customer_ref").null_count == 22
    assert verify_report(out).ok


def nested_table(rows: int, *, dotted: bool) -> pa.Table:
    """Lists of structs, nulls, a dictionary column; ``dotted``: a column ``a.b`` beside a
    struct ``a`` with a field ``b`` (the name selects both)."""
    columns: dict[str, pa.Array] = {
        "id": pa.array([f"x{i}" for i in range(rows)]),
        "n": pa.array([None if i % 3 else i for i in range(rows)], pa.int64()),
        "kind": pa.array(["p" if i % 2 else "q" for i in range(rows)]).dictionary_encode(),
        "images": pa.array(
            [[{"w": float(j), "s": f"k{j}"} for j in range(i % 4)] for i in range(rows)],
            pa.list_(pa.struct([("w", pa.float64()), ("s", pa.string())])),
        ),
        "a": pa.array([{"b": i} for i in range(rows)], pa.struct([("b", pa.int32())])),
    }
    if dotted:
        columns["a.b"] = pa.array([str(i) for i in range(rows)])
    return pa.table(columns)


def digest_both_ways(path: Path, size: int) -> tuple[RowDigest, RowDigest]:
    by_batches, by_columns = RowDigest(), RowDigest()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=size):
        by_batches.update(batch)
    by_columns.update_report(pq.ParquetFile(path))
    return by_batches, by_columns


def test_a_report_digested_a_column_at_a_time_digests_as_by_batches(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(nested_table(50, dotted=False), path, row_group_size=7)
    by_batches, by_columns = digest_both_ways(path, 5)
    assert by_columns.rows == by_batches.rows == 50
    assert by_columns.hexdigest() == by_batches.hexdigest()
    assert by_columns.sketch.to_text() == by_batches.sketch.to_text()


def test_a_column_whose_name_is_also_a_nested_path_digests_alike_in_any_batching(
    tmp_path: Path,
) -> None:
    # A kept input column may be named ``a.b`` beside a struct ``a`` with a field ``b``
    # (or ``audit_images[].s3_name``): their streams shared a name, so the digest depended
    # on how the rows were batched, and a report read in other batches failed ``verify``.
    path = tmp_path / "t.parquet"
    pq.write_table(nested_table(50, dotted=True), path, row_group_size=7)
    by_batches, by_columns = digest_both_ways(path, 5)
    assert by_columns.rows == by_batches.rows == 50
    assert by_columns.hexdigest() == by_batches.hexdigest()
    assert by_columns.sketch.to_text() == by_batches.sketch.to_text()


def test_fields_of_one_struct_that_clash_digest_alike_in_any_batching() -> None:
    # A kept struct column with a field ``x.y`` beside a field ``x`` holding ``y``: the two
    # fields' streams shared names inside the one column.
    kind = pa.struct([("x.y", pa.int32()), ("x", pa.struct([("y", pa.int32())]))])
    rows = [{"x.y": i, "x": {"y": 100 + i}} for i in range(6)]
    table = pa.table({"session_id": [f"s{i}" for i in range(6)], "tags": pa.array(rows, kind)})
    whole, by_rows = RowDigest(), RowDigest()
    whole.update(table)
    for batch in table.to_batches(max_chunksize=1):
        by_rows.update(batch)
    assert whole.hexdigest() == by_rows.hexdigest()
    assert "tags.x\\.y#data" in whole.streams
    assert "tags.x.y#data" in whole.streams


def test_names_with_dots_that_clash_with_no_other_column_digest_as_in_earlier_reports() -> None:
    # Only columns whose streams would share names are escaped: a report with a kept
    # ``customer.id`` column (and no struct ``customer``) keeps the digest it was written
    # with (pinned from a02cc2b), or ``verify`` and the merge would refuse it.
    table = pa.table(
        {
            "session_id": pa.array(["s1", "s2", "s3"]),
            "customer.id": pa.array(["c1", None, "c3"]),
            "score#2": pa.array([1.5, 2.5, None]),
            "tags": pa.array([{"x.y": 1}, {"x.y": 2}, None], pa.struct([("x.y", pa.int32())])),
        }
    )
    digest = RowDigest()
    digest.update(table)
    assert digest.hexdigest() == "e465f4cd2fcd47c39496c9c57260b1878f59c636d6a1e4b50bfd6bd94a49c477"
    assert "customer.id#data" in digest.streams


def test_only_the_clashing_dotted_column_gets_an_escaped_stream_name() -> None:
    digest = RowDigest()
    digest.update(nested_table(20, dotted=True))
    assert "a.b#data" in digest.streams  # the struct's field, as before
    assert "a\\.b#data" in digest.streams  # the column named ``a.b``
    plain = RowDigest()
    plain.update(nested_table(20, dotted=False))
    assert plain.streams["a.b#data"] == digest.streams["a.b#data"]
    assert "images[].w#data" in plain.streams


def test_a_report_that_breaks_while_it_is_rewritten_is_named_in_the_error(
    tmp_path: Path,
) -> None:
    report = write(tmp_path / "r.parquet", rows(40))
    chunk = pq.read_metadata(report).row_group(1).column(SCHEMA.names.index("confidence"))
    raw = bytearray(report.read_bytes())
    start = chunk.data_page_offset
    raw[start : start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    report.write_bytes(bytes(raw))
    answer = Row("s001", status=Status.SUCCEEDED, fetched_at=T0)  # not a copy: a rewrite
    with pytest.raises(OutputError, match=f"cannot read the existing report {report}"):
        merge(report, tmp_path / "out.parquet", [answer])
