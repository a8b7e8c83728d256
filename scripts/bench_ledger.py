"""Benchmark the ledger at volume: a rerun into a big report, and a fresh run's memory.

One command builds everything with the tool itself:

1. the emulator (its own process, no quota, no latency) and a real ``run`` of
   ``--seed-sessions`` of its sessions: a report as the tool writes it;
2. reports of each ``--sizes`` row count, made of that report's rows replicated under new
   session IDs and written (and signed: manifest /2) by the tool's own
   :class:`~batch.store.report.ReportWriter`;
3. for each size, ``liveness-audit run`` of ``--new`` other sessions of the emulator into
   a copy of that report (``--rate 5000``; unsealed: a report this host did not write
   is verified row by row), then of ``--new`` more (sealed: the nightly rerun on the
   host that wrote it): wall time and peak RSS (``wait4``), the report's rows after;
4. with ``--fresh 10000,100000``: a fresh run of that many sessions into no report, for the
   RSS of a run against the number of its answers.

``--sizes`` takes row counts, ``0`` for no report at all and ``empty`` for a report of no
rows (the baseline a report's size is measured against: reading Parquet at all costs the
same for both).

Usage: .venv/bin/python scripts/bench_ledger.py [--sizes 0,empty,100000,1000000] [--new 1000]
           [--fresh 10000,100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batch.store.report import ReportWriter

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


def start_emulator(work: Path, sessions: int) -> tuple[subprocess.Popen[bytes], str]:
    url_file = work / "url"
    command = [
        PYTHON, "-m", "batch", "emulator", "--sessions", str(sessions), "--seed", "11",
        "--url-file", str(url_file), "--write-input", str(work / "population.csv"),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=ENV)
    for _ in range(900):
        if url_file.exists():
            return proc, url_file.read_text().strip()
        time.sleep(0.1)
    raise SystemExit("the emulator did not start")


def audit(source: Path, output: Path, url: str) -> tuple[float, float, int, float]:
    """``liveness-audit run``: wall seconds, peak RSS (MB), exit code, CPU seconds."""
    command = [
        PYTHON, "-m", "batch", "run", str(source), "--output", str(output),
        "--endpoint-url", url, "--region", "us-east-1", "--rate", "5000",
        "--no-progress", "--settle", "0", "--work-dir", str(output.parent / "work"),
    ]  # fmt: skip
    logs = output.parent / "run.log"
    start = time.monotonic()
    with logs.open("wb") as sink:
        proc = subprocess.Popen(command, env=ENV, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    text = logs.read_text()
    if code not in (0, 1):
        raise SystemExit(f"run failed ({code}): {text[-2000:]}")
    return wall, usage.ru_maxrss / 1024, code, usage.ru_utime + usage.ru_stime


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("session_id\n" + "\n".join(ids) + "\n")
    return path


def replicate(seed: Path, rows: int, target: Path) -> float:
    """A report of ``rows`` rows: ``seed``'s rows again and again under new IDs, written by
    the tool's writer (so signed as the tool signs reports); seconds it took."""
    start = time.monotonic()
    table = pq.read_table(seed)
    writer = ReportWriter(target, schema=table.schema.remove_metadata())
    made = 0
    while made < rows:
        part = table.slice(0, min(table.num_rows, rows - made))
        ids = pa.array([str(uuid.UUID(int=made + i + 1)) for i in range(part.num_rows)])
        part = part.set_column(part.schema.get_field_index("session_id"), "session_id", ids)
        for batch in part.to_batches():
            writer.write_batch(batch)
        made += part.num_rows
    writer.commit({"tool": "liveness-audit", "bench": "replicated"}, input_sha256="")
    return time.monotonic() - start


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--new", type=int, default=1000)
    parser.add_argument("--seed-sessions", type=int, default=1000)
    parser.add_argument("--fresh", default="")
    return parser.parse_args()


def reruns(work: Path, url: str, ids: list[str], args: argparse.Namespace) -> None:
    seed = work / "seed.parquet"
    audit(write_ids(work / "seed.csv", ids[: args.seed_sessions]), seed, url)
    start = args.seed_sessions
    first = write_ids(work / "new-1.csv", ids[start : start + args.new])
    second = write_ids(work / "new-2.csv", ids[start + args.new : start + 2 * args.new])
    for label in [s for s in args.sizes.split(",") if s]:
        size = 0 if label == "empty" else int(label)
        base = work / f"base-{label}.parquet"
        output = work / f"out-{label}" / "report.parquet"
        output.parent.mkdir()
        built = 0.0
        if size or label == "empty":  # "empty": a signed report of no rows; 0: no report
            built = replicate(seed, size, base)
            shutil.copy(base, output)
        print(f"report of {size:,} rows ({label}) built in {built:.0f}s", flush=True)
        rows = size
        for source, how in ((first, "unsealed: verified row by row"), (second, "sealed")):
            load = os.getloadavg()[0]
            wall, rss, code, cpu = audit(source, output, url)
            count = pq.read_metadata(output).num_rows
            print(
                f"  rerun of {args.new} new sessions into {rows:>9,} rows ({how}): "
                f"wall {wall:5.1f}s  cpu {cpu:5.1f}s  peak rss {rss:6.1f} MB  exit {code}  "
                f"report rows {count:,}  (load average {load:.1f})",
                flush=True,
            )
            rows = count
        base.unlink(missing_ok=True)
        shutil.rmtree(output.parent)


def fresh(work: Path, url: str, ids: list[str], sizes: list[int]) -> None:
    for n in sizes:
        output = work / f"fresh-{n}" / "report.parquet"
        output.parent.mkdir()
        load = os.getloadavg()[0]
        wall, rss, code, cpu = audit(write_ids(work / f"fresh-{n}.csv", ids[:n]), output, url)
        print(
            f"fresh run of {n:>9,} sessions: wall {wall:6.1f}s  cpu {cpu:6.1f}s  "
            f"peak rss {rss:6.1f} MB  exit {code}  (load average {load:.1f})",
            flush=True,
        )
        shutil.rmtree(output.parent)


def main() -> None:
    args = arguments()
    sizes = [int(s) for s in args.fresh.split(",") if s]
    population = max([args.seed_sessions + 2 * args.new, *sizes])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        emulator, url = start_emulator(work, population)
        try:
            ids = (work / "population.csv").read_text().splitlines()[1:]
            reruns(work, url, ids, args)
            fresh(work, url, ids, sizes)
        finally:
            emulator.terminate()
            emulator.wait()


if __name__ == "__main__":
    main()
