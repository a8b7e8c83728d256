"""``--keep-columns``: input columns carried into the report, typed, first row winning."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from batch.emulator import EmulatorThread, write_input
from batch.store.inputs import read_plan
from batch.store.report import SCHEMA, report_schema
from tests.helpers import read_report, run_cli


def test_kept_csv_columns_arrive_as_text_with_the_values_of_the_input(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:120])
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["session_id", "customer_ref", "branch", "ignored"])
        out.writerows([sid, f"C-{i:05d}", f"{i % 7:03d}", "x"] for i, sid in enumerate(ids))
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, "--keep-columns", "customer_ref, branch")

    assert ran.code == 0, ran.stderr
    schema = pq.read_schema(report)
    assert schema.field("customer_ref").type == pa.string()
    assert schema.field("branch").type == pa.string()  # "003" stays text, not 3
    assert "ignored" not in schema.names
    assert schema.names[: len(SCHEMA)] == SCHEMA.names
    rows = read_report(report)
    for i, sid in enumerate(ids):
        assert rows.loc[sid, "customer_ref"] == f"C-{i:05d}"
        assert rows.loc[sid, "branch"] == f"{i % 7:03d}"


def test_kept_parquet_columns_keep_their_types_and_values(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:50])
    created = [datetime(2025, 1, 1, 0, i, tzinfo=UTC) for i in range(len(ids))]
    table = pa.table(
        {
            "session_id": pa.array(ids, pa.string()),
            "created_at": pa.array(created, pa.timestamp("ms", tz="UTC")),
            "tries": pa.array(list(range(len(ids))), pa.int16()),
            "vip": pa.array([i % 2 == 0 for i in range(len(ids))], pa.bool_()),
            "region": pa.array(["eu", "us"] * 25, pa.string()).dictionary_encode(),
        }
    )
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, "--keep-columns", "created_at,tries,vip,region")

    assert ran.code == 0, ran.stderr
    kept = pq.read_table(report).select(["session_id", "created_at", "tries", "vip", "region"])
    assert kept.schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert kept.schema.field("tries").type == pa.int16()
    assert kept.schema.field("vip").type == pa.bool_()
    assert kept.schema.field("region").type == pa.string()
    by_id = {row["session_id"]: row for row in kept.to_pylist()}
    for i, sid in enumerate(ids):
        assert by_id[sid]["created_at"] == created[i]
        assert by_id[sid]["tries"] == i
        assert by_id[sid]["vip"] is (i % 2 == 0)
        assert by_id[sid]["region"] == ("eu" if i % 2 == 0 else "us")


def test_a_kept_column_missing_from_the_input_is_exit_2_naming_it_and_the_columns_present(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, emulator.population.ids()[:5], reconcile_with=emulator.population)
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, "--keep-columns", "customer_ref,custmer_id")

    assert ran.code == 2
    line = ran.stderr.strip()
    assert "\n" not in line
    assert "Traceback" not in line
    assert "'custmer_id' not found" in line
    assert "'session_id', 'customer_ref', 'app_decision'" in line
    assert not report.exists()
    assert emulator.stats()["requests"] == 0


def test_a_kept_column_named_like_a_report_column_is_refused(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(f"session_id,status\n{emulator.population.ids()[0]},active\n")
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, "--keep-columns", "status")

    assert ran.code == 2
    assert "'status' is a column of the report itself" in ran.stderr
    assert not report.exists()


def test_nothing_is_kept_unless_named(emulator: EmulatorThread, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    write_input(source, emulator.population.ids()[:5], reconcile_with=emulator.population)
    report = tmp_path / "report.parquet"

    assert run_cli("run", source, "-o", report).code == 0

    assert pq.read_schema(report).remove_metadata() == report_schema()  # SCHEMA, region


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_repeated_id_keeps_its_first_row_and_other_values_count_as_conflicts(
    tmp_path: Path, suffix: str
) -> None:
    a, b = "a" * 8 + "-aaaa-4aaa-8aaa-" + "a" * 12, "b" * 8 + "-bbbb-4bbb-8bbb-" + "b" * 12
    rows = [(a, "first"), (b, "same"), (a.upper(), "second"), (b, "same"), (a, "third")]
    source = tmp_path / f"in{suffix}"
    table = pa.table({"session_id": [r[0] for r in rows], "ref": [r[1] for r in rows]})
    if suffix == ".csv":
        pacsv.write_csv(table, source)
    else:
        pq.write_table(table, source)

    plan = read_plan(source, keep=["ref"])

    assert plan.valid == (a, b)
    assert plan.kept == {a: ("first",), b: ("same",)}
    assert plan.duplicates == 3
    assert plan.conflicts == 2  # a's second and third rows; b's repeat agrees


def test_the_run_says_how_many_repeated_ids_had_other_kept_values(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    first, second = emulator.population.ids()[:2]
    source = tmp_path / "in.csv"
    source.write_text(f"session_id,ref\n{first},one\n{second},two\n{first},uno\n{second},two\n")
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, "--keep-columns", "ref")

    assert ran.code == 0, ran.stderr
    assert "1 repeated session ID had other values in the kept columns" in ran.stdout
    rows = read_report(report)
    assert rows.loc[first, "ref"] == "one"
    assert len(rows) == 2
