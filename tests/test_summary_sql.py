"""SQL at scale: the analyst queries of queries.sql run by DuckDB, ``liveness-audit sql``
over local and S3 reports, and the Athena table checked against what DuckDB reads."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from batch.emulator import EmulatorThread
from batch.reports.engine import Pin, Reports, read_report_file
from tests.helpers import nightly_reports, run_cli
from tests.s3server import MotoServer
from tests.test_summary_interactive import RECONCILE

NIGHTS = {"2026-11-20": 250, "2026-11-21": 400}
PENDING = ("CREATED", "IN_PROGRESS")


@pytest.fixture
def layout(emulator: EmulatorThread, tmp_path: Path) -> tuple[Path, dict[str, pd.DataFrame]]:
    """Reconciled reports in date= partitions, as run --output .../date={date}/ writes them."""
    frames = nightly_reports(emulator, tmp_path, NIGHTS, *RECONCILE)
    return tmp_path / "reports", frames


def sql_rows(*args: str | Path) -> list[dict[str, str]]:
    ran = run_cli("sql", *args, "--format", "csv")
    assert ran.code == 0, ran.stderr
    return list(csv.DictReader(io.StringIO(ran.stdout)))


def test_the_analyst_queries_of_queries_sql_agree_with_the_reports(
    layout: tuple[Path, dict[str, pd.DataFrame]],
) -> None:
    folder, frames = layout
    nights = sql_rows("pass_rate_by_night", folder)
    assert [row["date"] for row in nights] == list(NIGHTS)
    for row in nights:
        df = frames[row["date"]]
        passed = int(((df["status"] == "SUCCEEDED") & (df["confidence"] >= 80)).sum())
        results = int(df["status"].isin(["SUCCEEDED", "FAILED"]).sum())
        assert int(row["sessions"]) == len(df)
        assert int(row["passed"]) == passed
        assert int(row["pending"]) == int(df["status"].isin(PENDING).sum())
        assert int(row["disagreements"]) == int((df["agrees"] == False).sum())  # noqa: E712
        assert float(row["pass_rate"]) == pytest.approx(passed / results)
    assert nights[0]["pass_rate_change"] == ""
    change = float(nights[1]["pass_rate"]) - float(nights[0]["pass_rate"])
    assert float(nights[1]["pass_rate_change"]) == pytest.approx(change)

    directions = sql_rows("disagreements_by_direction", folder)
    for night, df in frames.items():
        wrong = df[df["agrees"] == False]  # noqa: E712  # a nullable column
        want = {
            "app passed, service failed": int((wrong["app_decision"] == "pass").sum()),
            "app failed, service passed": int((wrong["app_decision"] == "fail").sum()),
        }
        got = [(r["direction"], int(r["sessions"])) for r in directions if r["date"] == night]
        assert got == [(d, n) for d, n in want.items() if n]  # a spoof let through first

    reasons = sql_rows("need_a_look_by_reason", folder)
    for night, df in frames.items():
        by = {r["reason"]: int(r["sessions"]) for r in reasons if r["date"] == night}
        assert by["pending: a rerun asks again"] == int(df["status"].isin(PENDING).sum())
        assert by["expired: no result kept"] == int((df["status"] == "EXPIRED").sum())
        agreeing = (df["agrees"] == True) & (df["service_decision"] == "fail")  # noqa: E712
        assert by["fail, app agrees"] == int(agreeing.sum())


def test_ad_hoc_sql_reads_reports_in_s3_through_the_same_engine(
    layout: tuple[Path, dict[str, pd.DataFrame]], s3: MotoServer
) -> None:
    folder, frames = layout
    client = s3.client()
    client.create_bucket(Bucket="audit")
    for report in folder.rglob("*.parquet"):
        key = f"liveness/{report.relative_to(folder).as_posix()}"
        client.upload_file(str(report), "audit", key)
    query = (
        'SELECT "date", count(*) AS n, count(DISTINCT report) AS files FROM audit '
        "GROUP BY 1 ORDER BY 1"
    )
    rows = sql_rows(query, "s3://audit/liveness/")
    assert [(r["date"], int(r["n"])) for r in rows] == [(n, len(df)) for n, df in frames.items()]
    assert all(r["files"] == "1" for r in rows)


def test_a_query_that_fails_is_one_line_and_exit_2(
    layout: tuple[Path, dict[str, pd.DataFrame]],
) -> None:
    folder, _ = layout
    ran = run_cli("sql", "SELECT no_such_column FROM audit", folder)
    assert ran.code == 2
    assert ran.stderr.count("\n") == 1
    assert "the query failed" in ran.stderr
    assert "Traceback" not in ran.stderr


def duckdb_type(hive: str) -> str:
    """A Hive/Athena type as DuckDB names the same Parquet type."""
    simple = {
        "string": "VARCHAR",
        "double": "DOUBLE",
        "int": "INTEGER",
        "bigint": "BIGINT",
        "boolean": "BOOLEAN",
        "timestamp": "TIMESTAMP WITH TIME ZONE",
    }
    if hive in simple:
        return simple[hive]
    if hive.startswith("array<"):
        return duckdb_type(hive[6:-1]) + "[]"
    assert hive.startswith("struct<"), hive
    fields, depth, start, inner = [], 0, 0, hive[7:-1]
    for i, char in enumerate(inner + ","):
        depth += char == "<"
        depth -= char == ">"
        if char == "," and depth == 0:
            fields.append(inner[start:i])
            start = i + 1
    parts = [f"{name} {duckdb_type(kind)}" for name, kind in (f.split(":", 1) for f in fields)]
    return f"STRUCT({', '.join(parts)})"


def test_the_athena_table_has_the_types_duckdb_reads_from_the_same_layout(
    layout: tuple[Path, dict[str, pd.DataFrame]],
) -> None:
    folder, _ = layout
    sample = next(folder.rglob("*.parquet"))
    ran = run_cli("schema", "--athena", "s3://audit/liveness/", "--like", sample)
    assert ran.code == 0, ran.stderr
    ddl = ran.stdout
    body = ddl.split("(\n", 1)[1].split("\n)", 1)[0]
    declared = {}
    for line in body.splitlines():
        match = re.fullmatch(r"\s*`(\w+)` (.+?),?", line)
        assert match, line
        declared[match.group(1)] = duckdb_type(match.group(2))
    assert "PARTITIONED BY (`date` string)" in ddl
    declared["date"] = "VARCHAR"
    assert "'projection.date.type' = 'date'" in ddl
    assert "'storage.location.template' = 's3://audit/liveness/date=${date}/'" in ddl

    read = duckdb.connect().execute(
        "DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = true, "
        "hive_types = {'date': 'VARCHAR'})",
        [f"{folder}/*/*.parquet"],
    )
    found = {str(name): str(kind) for name, kind, *_ in read.fetchall()}
    assert found == declared
    bad = run_cli("schema", "--athena", "not-s3")
    assert bad.code == 2
    assert "must start with s3://" in bad.stderr


def test_a_report_replaced_while_it_is_summarized_is_read_as_one_version(
    layout: tuple[Path, dict[str, pd.DataFrame]], tmp_path: Path
) -> None:
    folder, frames = layout
    report = folder / "date=2026-11-20" / "part.parquet"
    pin = Pin(report)
    file = read_report_file(pin.path, source=str(report), threshold=None, default=80.0)
    newer = folder / "date=2026-11-21" / "part.parquet"
    shutil.copyfile(newer, tmp_path / "newer.parquet")
    (tmp_path / "newer.parquet").replace(report)  # as follow republishes its report
    spill = tmp_path / "spill"
    spill.mkdir()
    engine = Reports([file], spill=spill, pins=[pin])
    try:
        ((rows,),) = engine.rows("SELECT count(*) FROM audit")
    finally:
        engine.close()
    assert rows == len(frames["2026-11-20"]) == file.rows  # the version pinned, whole
    assert rows != len(frames["2026-11-21"])
