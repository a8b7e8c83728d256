"""Benchmark ``summarize`` at real volume: nights of valid reports, then time and peak RSS.

``make`` audits ``--sessions`` sessions of the emulator with a real run (reconciling the
application's decisions, keeping ``customer_ref``), then replicates that report's rows
into ``--nights`` nights of ``--rows`` rows each, every row under a new session ID, each
night written and signed (manifest, rows_sha256) by the tool's own
:class:`~batch.store.report.ReportWriter` into ``OUT/date=YYYY-MM-DD/part.parquet``, so
``liveness-audit verify`` accepts every one. Signing costs ~0.1 ms a row (the canonical
JSON of the manifest), so ``--distinct K`` writes K nights so and copies them for the rest
(the same IDs again under later dates: still valid reports, the same work to summarize).

``measure`` runs ``liveness-audit summarize OUT --html PAGE`` (and whatever else is given
after ``--``) in a child process and prints wall time, peak RSS (``wait4``) and the page's
size.

Usage: .venv/bin/python scripts/bench_reports.py make OUT [--nights 30] [--rows 1000000]
           [--sessions 3000] [--distinct 30]
       .venv/bin/python scripts/bench_reports.py measure OUT [--page PAGE] [-- EXTRA...]
       .venv/bin/python scripts/bench_reports.py compare OUT

``compare`` computes the trend's counts by night (sessions, pass at 80, pending,
disagreements) once with DuckDB and once with pyarrow datasets (streaming batches, counts
summed in Python), each in a child process, for wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from batch.emulator import EmulatorSettings, EmulatorThread, write_input
from batch.store.report import ReportWriter, read_provenance, read_table

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "liveness-audit"
FIRST_NIGHT = date(2026, 10, 1)
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "AKIDBENCH",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def seed_report(folder: Path, sessions: int) -> Path:
    """A real run against the emulator: ``sessions`` sessions, reconciled."""
    with EmulatorThread(EmulatorSettings(sessions=sessions, seed=22)) as emulator:
        source = folder / "sessions.csv"
        write_input(source, emulator.population.ids(), reconcile_with=emulator.population)
        report = folder / "seed.parquet"
        env = {**ENV, "AWS_ENDPOINT_URL_REKOGNITION": emulator.url}
        command = [str(BIN), "run", str(source), "--output", str(report), "--rate", "2000"]
        command += ["--settle", "0", "--no-progress", "--keep-columns", "customer_ref"]
        command += ["--app-decision-column", "app_decision"]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return report


def replicate(
    seed: pa.Table, provenance: dict[str, Any], night: date, rows: int, out: Path
) -> None:
    """``rows`` rows of ``seed`` (cycled) under new IDs, as the report of ``night``."""
    started = datetime(night.year, night.month, night.day, 2, tzinfo=UTC)
    target = out / f"date={night.isoformat()}" / "part.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = ReportWriter(target, schema=seed.schema, batch_rows=20_000)
    stamp = night.toordinal()
    chunk = 50_000
    for start in range(0, rows, chunk):
        count = min(chunk, rows - start)
        indices = pa.array([(start + i) % seed.num_rows for i in range(count)])
        part = seed.take(indices)
        ids = [f"{stamp:08x}-0000-4000-8000-{start + i:012x}" for i in range(count)]
        part = part.set_column(0, seed.schema.field(0), pa.array(ids, pa.string()))
        for row in part.to_pylist():
            writer.add(row)
    replica = {
        **provenance,
        "run_id": uuid.uuid4().hex,
        "started_at": started.isoformat(),
        "finished_at": (started + timedelta(minutes=20)).isoformat(),
        "replica_of": provenance.get("run_id"),
    }
    writer.commit(replica, input_sha256=str(provenance.get("input_sha256", "")))


def make(out: Path, nights: int, rows: int, sessions: int, distinct: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as folder:
        report = seed_report(Path(folder), sessions)
        seed, provenance = read_table(report), read_provenance(report)
    for n in range(nights):
        night = FIRST_NIGHT + timedelta(days=n)
        began = time.perf_counter()
        if n < distinct:
            replicate(seed, provenance, night, rows, out)
        else:  # a copy of an earlier night (same IDs, still valid) under this night's date
            earlier = FIRST_NIGHT + timedelta(days=n % distinct)
            target = out / f"date={night.isoformat()}" / "part.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / f"date={earlier.isoformat()}" / "part.parquet", target)
        print(f"{night}: {rows} rows in {time.perf_counter() - began:.1f} s", flush=True)


def measure(out: Path, page: Path, extra: list[str]) -> None:
    command = [
        str(BIN),
        "summarize",
        str(out),
        "--html",
        str(page),
        *(e for e in extra if e != "--"),
    ]
    began = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    figures = {
        "command": " ".join(["liveness-audit", *command[1:]]),
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "page_bytes": page.stat().st_size if page.exists() else None,
    }
    print(json.dumps(figures))


_ENGINES = {
    # the trend's figures by night: sessions by outcome, the pass rule at 80
    "duckdb": """
import sys, duckdb
db = duckdb.connect(config={"memory_limit": "512MB", "threads": 2})
rows = db.execute(
    "SELECT regexp_extract(filename, 'date=([0-9-]+)', 1) AS night, count(*), "
    "count(*) FILTER (WHERE status = 'SUCCEEDED' AND confidence >= 80), "
    "count(*) FILTER (WHERE status IN ('CREATED', 'IN_PROGRESS')), "
    "count(*) FILTER (WHERE agrees = false) "
    "FROM read_parquet(?, filename = true, hive_partitioning = false) GROUP BY night",
    [sys.argv[1] + "/*/*.parquet"],
).fetchall()
print(len(rows))
""",
    "pyarrow": """
import sys, collections
import pyarrow.compute as pc, pyarrow.dataset as ds
data = ds.dataset(sys.argv[1], format="parquet", partitioning="hive")
counts = collections.Counter()
for batch in data.to_batches(columns=["status", "confidence", "agrees", "date"], batch_size=131072):
    night = batch.column("date")[0].as_py()
    status = batch.column("status")
    high = pc.greater_equal(batch.column("confidence"), 80)
    passed = pc.and_(pc.equal(status, "SUCCEEDED"), high)
    counts[night, "sessions"] += batch.num_rows
    passed = pc.cast(pc.fill_null(passed, False), "int64")
    counts[night, "pass"] += pc.sum(passed).as_py() or 0
    pending = pc.is_in(status, value_set=__import__("pyarrow").array(["CREATED", "IN_PROGRESS"]))
    counts[night, "pending"] += pc.sum(pc.cast(pc.fill_null(pending, False), "int64")).as_py() or 0
    wrong = pc.fill_null(pc.invert(batch.column("agrees")), False)
    counts[night, "disagreements"] += pc.sum(pc.cast(wrong, "int64")).as_py() or 0
print(len(counts))
""",
}


def compare(out: Path) -> None:
    """The trend's counts by night over ``out``, by DuckDB and by pyarrow datasets."""
    for name, code in _ENGINES.items():
        began = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        figures = {
            "engine": name,
            "exit": os.waitstatus_to_exitcode(status),
            "wall_s": round(time.perf_counter() - began, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        }
        print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    making = sub.add_parser("make")
    making.add_argument("out", type=Path)
    making.add_argument("--nights", type=int, default=30)
    making.add_argument("--rows", type=int, default=1_000_000)
    making.add_argument("--sessions", type=int, default=3000)
    making.add_argument(
        "--distinct", type=int, default=30, help="nights with their own IDs (later: copies)"
    )
    measuring = sub.add_parser("measure")
    measuring.add_argument("out", type=Path)
    measuring.add_argument("--page", type=Path, default=Path("bench-summary.html"))
    comparing = sub.add_parser("compare")
    comparing.add_argument("out", type=Path)
    args, extra = parser.parse_known_args()  # measure: the rest goes to summarize
    if args.what == "compare":
        compare(args.out)
    elif args.what == "make":
        make(args.out, args.nights, args.rows, args.sessions, args.distinct)
    else:
        measure(args.out, args.page, extra)


if __name__ == "__main__":
    main()
