"""CPU per session of a fresh run, this code against round 1's, interleaved in one command.

Starts the emulator (its own process, this tree's code) with N sessions, no quota and a
fixed latency, then runs ``liveness-audit run --rate 5000 --fresh`` over all of them,
alternating between this tree and the round-1 code (commit 4189040, a git worktree with
its own venv, created on first use), ``--repeats`` times each. Each run starts in a fresh
folder. Per run: wall, CPU of the tool's process only (``wait4`` rusage: user + system;
the emulator's CPU is read from ``/proc`` and shown apart), CPU per session, peak RSS,
the report's row count, and the load the rest of the machine put on it meanwhile (busy
cores from ``/proc/stat`` minus the tool and the emulator): the machine is shared, so only
the same-run comparison counts.

Round 1 knows no ``--settle`` (it asks each session once); this code gets ``--settle 0``,
the same work. Each side runs with its own default ``--concurrency`` (round 1: 16; now a
ceiling of 256, rate x latency in flight) unless ``--concurrency`` is given.

Usage: .venv/bin/python scripts/bench_run.py [--sessions 30000] [--latency 0.001]
           [--repeats 2] [--round1 /tmp/round1] [--only now|round1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq
from bench import ENV, control, start_emulator  # scripts/bench.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
ROUND1 = "4189040"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    code: str
    sessions: int
    wall: float
    cpu: float  # user + system seconds of the tool's process
    peak_rss_mb: float
    rows: int
    emulator_cpu: float
    others_cores: float  # cores kept busy by everything else on the machine meanwhile

    @property
    def ms_per_session(self) -> float:
        return 1000 * self.cpu / max(1, self.sessions)


def busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def process_cpu(pid: int) -> float:
    """User + system seconds of a running process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def ensure_round1(path: Path) -> Path:
    """The round-1 worktree's python, creating the worktree and its venv when missing."""
    python = path / ".venv" / "bin" / "python"
    if python.exists():
        return python
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", str(path), ROUND1], check=True)
    subprocess.run(["python3.11", "-m", "venv", str(path / ".venv")], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(path)], check=True)
    return python


def command(
    python: Path, source: Path, output: Path, url: str, args: argparse.Namespace
) -> list[str]:
    line = [str(python), "-m", "batch", "run", str(source), "--output", str(output)]
    line += ["--no-progress", "--fresh", "--rate", str(args.rate), "--endpoint-url", url]
    if args.concurrency is not None:
        line += ["--concurrency", str(args.concurrency)]
    return line


def run_once(code: str, line: list[str], output: Path, sessions: int, emulator: int) -> Measured:
    """One run of the tool, measured; fails loudly when the tool does."""
    busy0, total0 = busy_ticks()
    emulator0 = process_cpu(emulator)
    start = time.monotonic()
    proc = subprocess.Popen(
        line, env=ENV, cwd=output.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err = proc.stderr.read().decode()  # small: --no-progress logs a line every few seconds
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.stderr.close()
    emulator_cpu = process_cpu(emulator) - emulator0
    busy1, total1 = busy_ticks()
    code_exit = os.waitstatus_to_exitcode(status)
    if code_exit not in (0, 1):
        raise SystemExit(f"{code} run failed with exit {code_exit}: {err[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    cores = (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)
    return Measured(
        code=code,
        sessions=sessions,
        wall=wall,
        cpu=cpu,
        peak_rss_mb=usage.ru_maxrss / 1024,
        rows=pq.ParquetFile(output).metadata.num_rows,
        emulator_cpu=emulator_cpu,
        others_cores=max(0.0, cores - (cpu + emulator_cpu) / wall),
    )


def show(m: Measured) -> str:
    return (
        f"{m.code:7} {m.sessions:>9,} sessions  wall {m.wall:6.1f} s  cpu {m.cpu:6.1f} s"
        f"  {m.ms_per_session:5.3f} ms/session  peak rss {m.peak_rss_mb:6.1f} MB"
        f"  rows {m.rows:,}  emulator cpu {m.emulator_cpu:5.1f} s"
        f"  others {m.others_cores:4.2f} cores"
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=30_000)
    parser.add_argument("--latency", type=float, default=0.001, help="emulator, s [0.001]")
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--concurrency", type=int, help="both sides [each its default]")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each code [2]")
    parser.add_argument("--round1", type=Path, default=Path("/tmp/round1"))  # noqa: S108  # a worktree, not a temp file
    parser.add_argument("--only", choices=("now", "round1"), help="measure one side only")
    parser.add_argument("--json", type=Path, help="append the runs as JSON lines here")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    sides = {"now": Path(sys.executable)}
    if args.only != "now":
        sides["round1"] = ensure_round1(args.round1)
    if args.only == "round1":
        del sides["now"]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start"
    )
    print(
        f"emulator: {args.sessions:,} sessions, no quota, latency {args.latency * 1000:g} ms;"
        f" run --rate {args.rate:g} --fresh, concurrency "
        f"{args.concurrency or 'each default'}"
    )
    results: list[Measured] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        emulator, url = start_emulator(work, args.sessions, None, args.latency)
        source = work / "in.csv"
        try:
            for i in range(args.repeats):
                for code, python in sides.items():
                    folder = work / f"{code}-{i}"
                    folder.mkdir()
                    output = folder / "report.parquet"
                    line = command(python, source, output, url, args)
                    if code == "now":
                        line += ["--settle", "0"]  # round 1 asks once; so does this
                    control(url, "reset")
                    results.append(run_once(code, line, output, args.sessions, emulator.pid))
                    print(show(results[-1]), flush=True)
        finally:
            emulator.terminate()
            emulator.wait()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        with args.json.open("a") as f:
            for m in results:
                f.write(json.dumps({**asdict(m), "ms_per_session": m.ms_per_session}) + "\n")


if __name__ == "__main__":
    main()
