"""The columnar merge's rules, file by file (no emulator): what a report is, which rows a
run reads back, when a report is refused, how schemas meet, how rows are replaced."""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.errors import OutputError
from batch.store import merge
from batch.store.merge import (
    Base,
    EditedReportError,
    SchemaError,
    check_base,
    conform,
    earlier_edits,
    lean_reads,
    merged_schema,
    read_base,
    rows_for,
    stream_merge,
)
from batch.store.report import GROUP_BATCHES, SCHEMA, ReportWriter
from batch.store.row import Row
from batch.store.seal import Seals
from batch.verdict import EXIT_USAGE, verdict
from tests.helpers import edit_one_confidence


def sid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def answer(n: int, status: str = "SUCCEEDED", **extra: Any) -> Row:
    values = {"session_id": sid(n), "status": status, "confidence": 90.0 + n, "attempts": 1}
    return Row.from_flat(values | extra)  # extra: columns beside the report's base ones


def write(
    path: Path,
    rows: Sequence[Row],
    *,
    schema: pa.Schema = SCHEMA,
    provenance: dict[str, Any] | None = None,
    batch_rows: int = 1000,
) -> Path:
    writer = ReportWriter(path, schema=schema, batch_rows=batch_rows)
    for row in rows:
        writer.add(row)
    writer.commit(provenance or {"tool": "test"}, input_sha256="0" * 64)
    return path


def plain_parquet(path: Path, columns: dict[str, list[Any]]) -> Path:
    """A Parquet file liveness-audit did not write (no manifest, no provenance)."""
    pq.write_table(pa.table(columns), path)
    return path


class Held:
    """The rows a run holds, as the ledger hands them to the merge (already decided)."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self._rows = {row.session_id: row for row in rows}
        self.asked: list[list[str]] = []

    def held(self) -> list[str]:
        return list(self._rows)

    def rows(self, session_ids: Sequence[str]) -> list[Row]:
        self.asked.append(list(session_ids))
        return [self._rows[s] for s in session_ids]

    def columns(self, session_ids: Sequence[str]) -> list[dict[str, object]]:
        return [row.flat() for row in self.rows(session_ids)]


def merged(tmp_path: Path, base: Base, held: Held, schema: pa.Schema = SCHEMA) -> pa.Table:
    writer = ReportWriter(tmp_path / "out.parquet", schema=schema, batch_rows=2)
    try:
        stream_merge(writer, base, held)
    except BaseException:
        writer.abandon()
        raise
    writer.commit({}, input_sha256="0" * 64)
    return pq.read_table(tmp_path / "out.parquet")


# --- what a report is ------------------------------------------------------------------


def test_no_report_at_the_output_is_an_empty_base(tmp_path: Path) -> None:
    assert read_base(None) == Base(None)
    assert read_base(tmp_path / "absent.parquet") == Base(None)


def test_a_report_is_known_by_its_footer_its_schema_without_metadata(tmp_path: Path) -> None:
    path = write(tmp_path / "r.parquet", [answer(1), answer(2)])
    base = read_base(path)
    assert (base.path, base.rows) == (path, 2)
    assert base.schema is not None
    assert base.schema.names == SCHEMA.names
    assert base.schema.metadata is None  # the manifest stays with the file


def test_a_file_that_is_not_a_report_is_refused_never_overwritten(tmp_path: Path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(OutputError) as caught:
        read_base(junk)
    assert str(caught.value).startswith(f"cannot read the existing report {junk} (")
    assert "Parquet magic bytes not found" in str(caught.value)  # the reason, as Arrow says
    assert str(caught.value).endswith(
        "it may hold answers no rerun can fetch again: move it away or name another --output"
    )
    other = plain_parquet(tmp_path / "other.parquet", {"id": ["a"]})
    with pytest.raises(OutputError, match="not a liveness-audit report"):
        read_base(other)


# --- the rows a run reads back -----------------------------------------------------------


def test_only_the_asked_sessions_rows_are_read_in_file_order_across_row_groups(
    tmp_path: Path,
) -> None:
    rows = [answer(n) for n in range(20)]
    batch_rows = 8 // GROUP_BATCHES  # row groups of 8 rows
    path = write(tmp_path / "r.parquet", rows, batch_rows=batch_rows)
    assert pq.ParquetFile(path).metadata.num_row_groups == 3
    found = rows_for(read_base(path), {sid(17), sid(3), sid(9), sid(99)})
    assert [r.session_id for r in found] == [sid(3), sid(9), sid(17)]
    assert [r.confidence for r in found] == [93.0, 99.0, 107.0]


def test_sessions_asked_beyond_one_chunk_of_ids_are_all_found(tmp_path: Path) -> None:
    """The asked IDs become an Arrow array a chunk at a time (a plan's million IDs are
    never a million strings at once): an ID in the last chunk is found too."""
    path = write(tmp_path / "r.parquet", [answer(1), answer(9_000)])
    asked = [sid(n) for n in range(1, 9_001)]  # more than two chunks of READ_BATCH

    found = rows_for(read_base(path), asked)

    assert [r.session_id for r in found] == [sid(1), sid(9_000)]


def test_nothing_is_read_without_a_report_or_without_sessions(tmp_path: Path) -> None:
    path = write(tmp_path / "r.parquet", [answer(1)])
    assert rows_for(Base(None), {sid(1)}) == []
    assert rows_for(read_base(path), set()) == []


def test_a_report_that_cannot_be_read_back_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "r.parquet", [answer(1)])
    base = read_base(path)
    path.write_bytes(path.read_bytes()[:100])  # cut short after its footer was read
    with pytest.raises(OutputError) as caught:
        rows_for(base, {sid(1)})
    assert str(caught.value).startswith(f"cannot read the existing report {path} (")
    assert "(None)" not in str(caught.value)  # the reason is named
    with pytest.raises(OutputError) as streaming:
        merged(tmp_path, base, Held([answer(1)]))
    assert str(streaming.value) == str(caught.value)


def test_a_row_of_an_older_report_reads_with_its_missing_columns_empty(tmp_path: Path) -> None:
    path = plain_parquet(
        tmp_path / "old.parquet",
        {"session_id": [sid(1)], "status": ["FAILED"], "attempts": pa.array([None], pa.int32())},
    )
    (row,) = rows_for(read_base(path), {sid(1)})
    assert (row.status, row.attempts, row.confidence, row.audit_images) == ("FAILED", 0, None, ())


def test_a_report_row_that_does_not_fit_its_columns_is_refused_naming_the_report(
    tmp_path: Path,
) -> None:
    path = plain_parquet(tmp_path / "odd.parquet", {"session_id": [sid(1)], "status": ["SOLD"]})
    with pytest.raises(OutputError, match=r"^cannot read the existing report .*odd\.parquet: "):
        rows_for(read_base(path), {sid(1)})


# --- integrity before a merge ----------------------------------------------------------


def test_an_intact_report_or_none_merges_with_nothing_to_record(tmp_path: Path) -> None:
    path = write(tmp_path / "r.parquet", [answer(1), answer(2)])
    assert check_base(Base(None), accept=False) is None
    assert check_base(read_base(path), accept=False) is None


def test_a_report_sealed_at_its_location_is_not_verified_again(tmp_path: Path) -> None:
    # A file without a manifest would be refused; sealed byte for byte, it is not read.
    path = plain_parquet(tmp_path / "r.parquet", {"session_id": [sid(1)]})
    seals = Seals(tmp_path / "seals")
    seals.record("s3://b/r.parquet", path)
    sealed = check_base(read_base(path), accept=False, seals=seals, location="s3://b/r.parquet")
    assert sealed is None
    with pytest.raises(EditedReportError):
        check_base(read_base(path), accept=False, seals=seals, location="s3://b/other")


def test_an_edited_report_is_refused_naming_the_rows_and_the_way_out(tmp_path: Path) -> None:
    path = write(tmp_path / "r.parquet", [answer(n) for n in range(3)])
    edited = edit_one_confidence(path)
    with pytest.raises(EditedReportError) as caught:
        check_base(read_base(path), accept=False)
    assert str(caught.value) == (
        f"{path} cannot be merged into: 1 rows differ from the ones written (sessions "
        f"{edited}). A merge would sign its values as answers. Restore it, move it away (a "
        "new report is started), or rerun with --accept-edited-report to merge it anyway "
        "(recorded in the report's provenance)"
    )


def test_an_accepted_edit_is_recorded_rows_sessions_and_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "r.parquet", [answer(n) for n in range(3)])
    edited = edit_one_confidence(path)
    record = check_base(read_base(path), accept=True)
    assert record is not None
    place = [sid(n) for n in range(3)].index(edited)
    assert record["report_rows_differ"] == 1
    assert record["rows"] == [place]
    assert record["session_ids"] == [edited]
    assert record["problems"]
    assert all(isinstance(p, str) for p in record["problems"])


def edit_confidences(path: Path, count: int) -> None:
    """Change the first ``count`` rows' confidence by hand, footer kept."""
    table = pq.read_table(path)
    metadata = pq.read_metadata(path).metadata
    values = table["confidence"].to_pylist()
    values[:count] = [1.0] * count
    column = table.schema.get_field_index("confidence")
    edited = table.set_column(column, "confidence", pa.array(values, pa.float64()))
    pq.write_table(edited.replace_schema_metadata(metadata), path)


@pytest.mark.parametrize(("edits", "more"), [(5, ""), (6, ", ..."), (7, ", ...")])
def test_more_than_five_edited_sessions_are_shown_as_the_first_five(
    tmp_path: Path, edits: int, more: str
) -> None:
    path = write(tmp_path / "r.parquet", [answer(n) for n in range(8)])
    edit_confidences(path, edits)
    with pytest.raises(EditedReportError) as caught:
        check_base(read_base(path), accept=False)
    shown = ", ".join(sid(n) for n in range(5)) + more
    assert f"{edits} rows differ from the ones written (sessions {shown})." in str(caught.value)
    record = check_base(read_base(path), accept=True)
    assert record is not None
    assert record["rows"] == list(range(edits))
    assert record["session_ids"] == [sid(n) for n in range(edits)]


def test_an_edit_too_wide_to_name_its_rows_is_refused_with_the_reason(tmp_path: Path) -> None:
    # The manifest's sketch names up to about 300 edited rows; past that, the reason alone.
    path = write(tmp_path / "r.parquet", [answer(n) for n in range(600)])
    edit_confidences(path, 600)
    with pytest.raises(EditedReportError, match="cannot be merged into: the rows do not hash"):
        check_base(read_base(path), accept=False)
    record = check_base(read_base(path), accept=True)
    assert record is not None
    assert (record["report_rows_differ"], record["rows"]) == (None, None)
    assert record["problems"][0].startswith("the rows do not hash to the manifest")


def test_a_report_without_a_manifest_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = plain_parquet(tmp_path / "r.parquet", {"session_id": [sid(1)]})
    with pytest.raises(EditedReportError, match=r"cannot be merged into: .*manifest"):
        check_base(read_base(path), accept=False)
    record = check_base(read_base(path), accept=True)
    assert record is not None
    assert record["report_rows_differ"] is None
    assert record["rows"] is None
    assert record["session_ids"] == []
    assert len(record["problems"]) == 1
    assert "manifest" in record["problems"][0]


def test_edits_accepted_by_earlier_runs_are_carried_from_the_provenance(tmp_path: Path) -> None:
    accepted = {"report_rows_differ": 1, "session_ids": [sid(1)]}
    carried = write(
        tmp_path / "a.parquet", [answer(1)], provenance={"accepted_edits": [accepted, "junk"]}
    )
    assert earlier_edits(read_base(carried)) == [accepted]
    odd = write(tmp_path / "b.parquet", [answer(1)], provenance={"accepted_edits": "all"})
    assert earlier_edits(read_base(odd)) == []
    none = write(tmp_path / "c.parquet", [answer(1)])
    assert earlier_edits(read_base(none)) == []
    foreign = plain_parquet(tmp_path / "d.parquet", {"session_id": [sid(1)]})
    assert earlier_edits(read_base(foreign)) == []
    assert earlier_edits(Base(None)) == []


def test_an_accepted_edit_joins_the_earlier_ones_stamped_with_the_run_and_the_moment(
    tmp_path: Path,
) -> None:
    earlier = {"report_rows_differ": 1, "session_ids": [sid(1)]}
    base = read_base(
        write(tmp_path / "a.parquet", [answer(1)], provenance={"accepted_edits": [earlier]})
    )
    assert merge.edit_history(base, None, "run-2") == [earlier]
    before = datetime.now(UTC)
    now = {"report_rows_differ": 2, "session_ids": [sid(2), sid(3)]}
    history = merge.edit_history(base, now, "run-2")
    assert history[0] == earlier
    assert len(history) == 2
    latest = history[1]
    assert latest == {"run_id": "run-2", "at": latest["at"], **now}
    assert before <= datetime.fromisoformat(latest["at"]) <= datetime.now(UTC)


# --- schemas meeting ---------------------------------------------------------------------

TS = pa.timestamp


@pytest.mark.parametrize(
    ("report", "run", "kept"),
    [
        # the run's type widens into the report's: the report's is kept
        (pa.int16(), pa.int8(), pa.int16()),
        (pa.int64(), pa.uint32(), pa.int64()),
        (pa.uint16(), pa.uint8(), pa.uint16()),
        (pa.float64(), pa.int32(), pa.float64()),
        (pa.float64(), pa.float32(), pa.float64()),
        (pa.large_string(), pa.string(), pa.large_string()),
        (pa.string(), pa.large_string(), pa.string()),
        (pa.large_binary(), pa.binary(), pa.large_binary()),
        (TS("ms", tz="UTC"), TS("s", tz="UTC"), TS("ms", tz="UTC")),
        (TS("ns", tz="UTC"), TS("us", tz="UTC"), TS("ns", tz="UTC")),
        (pa.float32(), pa.float16(), pa.float32()),
        (pa.int32(), pa.null(), pa.int32()),
        (pa.int32(), pa.int32(), pa.int32()),
        # the report's widens into the run's: the run's is kept
        (pa.int8(), pa.int16(), pa.int16()),
        (pa.int32(), pa.float64(), pa.float64()),
        (TS("s", tz="UTC"), TS("us", tz="UTC"), TS("us", tz="UTC")),
        (pa.uint8(), pa.int16(), pa.int16()),
    ],
)
def test_a_column_both_have_keeps_the_wider_type(
    report: pa.DataType, run: pa.DataType, kept: pa.DataType
) -> None:
    schema = merged_schema(pa.schema([("ref", report)]), pa.schema([("ref", run)]))
    assert schema.field("ref").type == kept


@pytest.mark.parametrize(
    ("report", "run"),
    [
        (pa.int16(), pa.uint16()),  # neither holds the other's values
        (pa.int8(), pa.uint8()),
        (pa.uint64(), pa.int64()),
        (pa.float64(), pa.int64()),  # 2**53 + 1 is not a float64
        (pa.float32(), pa.int32()),
        (pa.float32(), pa.int16()),  # a float32 column is never the int's home
        (pa.string(), pa.int64()),
        (pa.string(), pa.binary()),
        (TS("s", tz="UTC"), TS("s")),  # a zone and none
        (TS("ms", tz="UTC"), TS("us", tz="Europe/Paris")),
    ],
)
def test_a_type_change_that_would_lose_values_is_refused_naming_both_types(
    report: pa.DataType, run: pa.DataType
) -> None:
    with pytest.raises(SchemaError) as caught:
        merged_schema(pa.schema([("ref", report)]), pa.schema([("ref", run)]))
    assert str(caught.value) == (
        f"column 'ref' is {report} in the report and {run} in this run: merging would lose "
        "values; convert it in the input, keep it under another name, or write to another "
        "--output"
    )
    assert verdict(caught.value).code == EXIT_USAGE  # refused before any call: exit 2


def test_the_runs_columns_come_first_then_the_reports_others() -> None:
    report = pa.schema([("a", pa.int64()), ("kept", pa.string()), ("b", pa.int64())])
    run = pa.schema([("b", pa.int64()), ("new", pa.string()), ("a", pa.int64())])
    assert merged_schema(report, run).names == ["b", "new", "a", "kept"]
    assert merged_schema(None, run) is run


def test_every_kept_column_is_merged_behind_the_reports_own() -> None:
    report = pa.schema([*SCHEMA, ("ref", pa.int16()), ("note", pa.large_string())])
    run = pa.schema([*SCHEMA, ("ref", pa.int8()), ("note", pa.string())])
    schema = merged_schema(report, run)
    assert schema.field("ref").type == pa.int16()
    assert schema.field("note").type == pa.large_string()


def test_reads_of_big_reports_use_the_systems_allocator() -> None:
    before = pa.default_memory_pool()
    try:
        lean_reads()
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)


def test_the_reports_own_columns_take_this_versions_types() -> None:
    # an older report's confidence as float32, its attempts as text: conform reads them
    report = pa.schema([("confidence", pa.float32()), ("attempts", pa.string())])
    assert merged_schema(report, SCHEMA).field("confidence").type == pa.float64()
    assert merged_schema(report, SCHEMA).field("attempts").type == pa.int32()


# --- older reports' batches into this version's schema --------------------------------


def test_an_older_reports_batch_gets_the_missing_columns_empty_and_counts_zero() -> None:
    schema = pa.schema([*SCHEMA, pa.field("ref", pa.int64())])
    batch = pa.RecordBatch.from_pydict(
        {"ref": pa.array([1, 2], pa.int32()), "session_id": [sid(1), sid(2)]}
    )
    out = conform(batch, schema)
    assert out.schema == schema
    assert out.column("session_id").to_pylist() == [sid(1), sid(2)]
    assert out.column("ref").type == pa.int64()
    assert out.column("ref").to_pylist() == [1, 2]
    assert out.column("attempts").to_pylist() == [0, 0]
    assert out.column("audit_image_count").to_pylist() == [0, 0]
    assert out.column("audit_images").to_pylist() == [[], []]
    assert out.column("status").to_pylist() == [None, None]
    assert out.column("checks").to_pylist() == [None, None]


def test_each_filler_of_a_missing_column_is_of_that_columns_type() -> None:
    """Not left to the batch's cast: a filler is made in the column's own type."""
    for name in ("attempts", "audit_image_count", "audit_images", "status", "fetched_at"):
        field = SCHEMA.field(name)
        filler = merge._filler(field, 3)
        assert filler.type == field.type, name
        assert len(filler) == 3
    assert merge._filler(SCHEMA.field("attempts"), 2).to_pylist() == [0, 0]
    assert merge._filler(SCHEMA.field("audit_images"), 2).to_pylist() == [[], []]
    assert merge._filler(SCHEMA.field("status"), 2).null_count == 2


def test_an_older_reports_batch_is_conformed_in_columns_not_as_python_rows() -> None:
    # The merge's promise: never a Python object per row of the report. 20,000 rows as
    # dicts take tens of MB; filled and cast as Arrow columns, about one MB (the empty
    # image lists of the filler).
    rows = 20_000
    schema = pa.schema([*SCHEMA, pa.field("ref", pa.int64())])
    batch = pa.RecordBatch.from_pydict(
        {
            "session_id": [sid(n) for n in range(rows)],
            "ref": pa.array(range(rows), pa.int32()),
            "checked_at": pa.array([None] * rows, pa.timestamp("s", tz="UTC")),
        }
    )
    tracemalloc.start()
    try:
        out = conform(batch, schema)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000
    assert out.schema == schema
    assert out.column("ref").type == pa.int64()
    assert out.column("attempts").null_count == 0
    assert out.column("audit_images").null_count == 0


def test_an_older_reports_timestamps_as_text_are_read_into_todays_times() -> None:
    # Arrow cannot cast a text time without a zone to a zoned one: read row by row, as
    # the journal's ISO times are, in UTC.
    batch = pa.RecordBatch.from_pydict(
        {"session_id": [sid(1), sid(2)], "fetched_at": ["2026-11-26T12:00:00", None]}
    )
    out = conform(batch, SCHEMA)
    assert out.schema == SCHEMA
    assert out.column("fetched_at").to_pylist() == [datetime(2026, 11, 26, 12, tzinfo=UTC), None]
    assert out.column("session_id").to_pylist() == [sid(1), sid(2)]


def test_a_report_column_whose_values_do_not_fit_is_refused_naming_it() -> None:
    batch = pa.RecordBatch.from_pydict({"session_id": [sid(1)], "attempts": ["many"]})
    with pytest.raises(OutputError) as caught:
        conform(batch, SCHEMA)
    assert str(caught.value) == (
        "cannot read a row of the existing report: column 'attempts' cannot hold str 'many'"
    )


def test_an_older_reports_image_struct_is_read_into_todays() -> None:
    old_image = pa.struct([("s3_bucket", pa.string()), ("s3_name", pa.string())])
    batch = pa.RecordBatch.from_pydict(
        {
            "session_id": [sid(1)],
            "attempts": pa.array([2], pa.int32()),
            "audit_image_count": pa.array([1], pa.int32()),
            "audit_images": pa.array([[{"s3_bucket": "b", "s3_name": "k"}]], pa.list_(old_image)),
        }
    )
    out = conform(batch, SCHEMA)
    (image,) = out.column("audit_images").to_pylist()[0]
    assert (image["s3_bucket"], image["s3_name"], image["bytes_size"]) == ("b", "k", None)
    assert out.column("audit_image_count").to_pylist() == [1]
    assert out.column("attempts").to_pylist() == [2]


# --- the merge ---------------------------------------------------------------------------


def test_held_rows_replace_the_reports_rows_where_they_stand_and_new_ones_follow(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "r.parquet", [answer(n, "IN_PROGRESS") for n in range(1, 6)])
    held = Held([answer(9), answer(3), answer(5, "FAILED")])
    table = merged(tmp_path, read_base(path), held)
    assert table["session_id"].to_pylist() == [sid(n) for n in (1, 2, 3, 4, 5, 9)]
    statuses = ["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED", "IN_PROGRESS", "FAILED", "SUCCEEDED"]
    assert table["status"].to_pylist() == statuses


def test_without_a_report_the_held_rows_are_the_report_in_their_order(tmp_path: Path) -> None:
    table = merged(tmp_path, Base(None), Held([answer(2), answer(1)]))
    assert table["session_id"].to_pylist() == [sid(2), sid(1)]


def test_with_nothing_held_the_report_is_copied_as_it_is(tmp_path: Path) -> None:
    rows = [answer(n) for n in range(1, 4)]
    path = write(tmp_path / "r.parquet", rows)
    table = merged(tmp_path, read_base(path), Held([]))
    assert table.equals(pq.read_table(path).replace_schema_metadata(None))


def test_a_held_row_keeps_the_columns_only_the_reports_row_has(tmp_path: Path) -> None:
    schema = pa.schema([*SCHEMA, pa.field("customer_ref", pa.string())])
    path = write(
        tmp_path / "r.parquet",
        [answer(1, "CREATED", customer_ref="c-1"), answer(2, customer_ref="c-2")],
        schema=schema,
    )
    table = merged(tmp_path, read_base(path), Held([answer(1)]), schema)
    assert table["status"].to_pylist() == ["SUCCEEDED", "SUCCEEDED"]
    assert table["customer_ref"].to_pylist() == ["c-1", "c-2"]


def test_the_writer_completes_replaced_rows_as_it_completes_any(tmp_path: Path) -> None:
    schema = pa.schema([*SCHEMA, pa.field("agrees", pa.bool_())])
    path = write(tmp_path / "r.parquet", [answer(1), answer(2)], schema=schema)

    def decorate(values: dict[str, Any]) -> dict[str, Any]:
        return values | {"agrees": True}

    writer = ReportWriter(tmp_path / "out.parquet", schema=schema, decorate=decorate)
    stream_merge(writer, read_base(path), Held([answer(2), answer(3)]))
    writer.commit({}, input_sha256="0" * 64)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table["agrees"].to_pylist() == [None, True, True]  # row 1 streamed untouched


def test_a_damaged_reports_repeated_session_is_written_once_at_its_first_place(
    tmp_path: Path,
) -> None:
    rows = [answer(1, "CREATED"), answer(1, "CREATED"), answer(2, "CREATED"), answer(3)]
    path = write(tmp_path / "r.parquet", rows, batch_rows=1)
    table = merged(tmp_path, read_base(path), Held([answer(1), answer(2)]))
    assert table["session_id"].to_pylist() == [sid(1), sid(2), sid(3)]
    assert table["status"].to_pylist() == ["SUCCEEDED"] * 3


def test_a_repeat_across_batches_is_dropped_too(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(merge, "_BATCH", 2)  # the report read two rows at a time
    rows = [answer(1, "CREATED"), answer(2), answer(3), answer(1, "CREATED"), answer(4)]
    path = write(tmp_path / "r.parquet", rows)
    table = merged(tmp_path, read_base(path), Held([answer(1), answer(7)]))
    assert table["session_id"].to_pylist() == [sid(n) for n in (1, 2, 3, 4, 7)]


def test_a_batch_of_nothing_but_repeats_already_written_adds_no_row(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(merge, "_BATCH", 2)  # the second batch: session 1 twice more
    rows = [answer(1, "CREATED"), answer(2), answer(1, "CREATED"), answer(1), answer(3)]
    path = write(tmp_path / "r.parquet", rows)
    table = merged(tmp_path, read_base(path), Held([answer(1)]))
    assert table["session_id"].to_pylist() == [sid(1), sid(2), sid(3)]
    assert table["status"].to_pylist() == ["SUCCEEDED"] * 3


def test_new_sessions_are_asked_for_a_chunk_at_a_time_each_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(merge, "HELD_AT_ONCE", 2)
    path = write(tmp_path / "r.parquet", [answer(2), answer(4)])
    held = Held([answer(n) for n in range(1, 7)])
    table = merged(tmp_path, read_base(path), held)
    assert table["session_id"].to_pylist() == [sid(n) for n in (2, 4, 1, 3, 5, 6)]
    assert held.asked[-3:] == [[sid(1)], [sid(3)], [sid(5), sid(6)]]
