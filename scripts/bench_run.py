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

With ``--together`` each repeat starts both codes at the same moment against the same
emulator: they share the machine, and whatever else runs on it, alike (a busy shared
machine moves CPU per session by 10-20% from minute to minute; walls are then shared and
mean little).

Round 1 knows no ``--settle`` (it asks each session once); this code gets ``--settle 0``,
the same work. Each side runs with its own default ``--concurrency`` (round 1: 16; now a
ceiling of 256, rate x latency in flight) unless ``--concurrency`` is given.

``--profile FILE`` instead runs this code once under py-spy (``pip install py-spy``;
sampling, so the tool runs at full speed), writes a speedscope profile and prints where the
tool's CPU goes: botocore's signing, serialising and parsing, the HTTP exchange, the rest
of the client call, the tool's own per-answer work, the report at the end, start-up, and
the top functions by own time. A helper thread's idle wait is left out (py-spy does not
always see it as idle).

``--sizes 10000,1000000`` measures several run sizes in one command (the emulator serves
the largest; each size runs the first N of its sessions): a run's memory should not grow
with its sessions (issue 24). ``--round1-sizes`` limits round 1 to some of them (a
1,000,000-session run of each code takes half an hour of a quiet machine).

Usage: .venv/bin/python scripts/bench_run.py [--sessions 30000] [--latency 0.001]
           [--repeats 2] [--round1 /tmp/round1] [--only now|round1] [--json FILE]
           [--sizes 10000,1000000 [--round1-sizes 10000]]
       .venv/bin/python scripts/bench_run.py --profile prof.speedscope [--sessions 100000]
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


def run_group(
    runs: list[tuple[str, list[str], Path]], sessions: int, emulator: int
) -> list[Measured]:
    """Runs of the tool started together (one, or each code at once with ``--together``),
    measured; fails loudly when one fails. The machine's other load is over the group."""
    busy0, total0 = busy_ticks()
    emulator0 = process_cpu(emulator)
    start = time.monotonic()
    procs = []
    for _, line, output in runs:
        with (output.parent / "stderr.log").open("w") as err:
            procs.append(
                subprocess.Popen(
                    line, env=ENV, cwd=output.parent, stderr=err, stdout=subprocess.DEVNULL
                )
            )
    done = []
    for (code, _, output), proc in zip(runs, procs, strict=True):
        _, status, usage = os.wait4(proc.pid, 0)
        done.append((usage, time.monotonic() - start))
        code_exit = os.waitstatus_to_exitcode(status)
        if code_exit not in (0, 1):
            err = (output.parent / "stderr.log").read_text()[-2000:]
            raise SystemExit(f"{code} run failed with exit {code_exit}: {err}")
    span = time.monotonic() - start
    emulator_cpu = process_cpu(emulator) - emulator0
    busy1, total1 = busy_ticks()
    cores = (os.cpu_count() or 1) * (busy1 - busy0) / max(1, total1 - total0)
    tools = sum(u.ru_utime + u.ru_stime for u, _ in done)
    others = max(0.0, cores - (tools + emulator_cpu) / span)
    return [
        Measured(
            code=code,
            sessions=sessions,
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024,
            rows=pq.ParquetFile(output).metadata.num_rows,
            emulator_cpu=emulator_cpu,
            others_cores=others,
        )
        for (code, _, output), (usage, wall) in zip(runs, done, strict=True)
    ]


# Where a sample belongs: the first area (in this order) any of its frames is in.
AREAS = (
    ("idle: the journal's fsync thread waiting", ("Journal._sync_loop",), ("Event.wait",)),
    ("start-up: imports", ("_find_and_load",), ()),
    ("botocore: signing (SigV4)", ("AioRequestSigner.handler",), ()),
    ("botocore: parsing the answer", ("AioResponseParser.parse",), ()),
    ("HTTP: aiohttp request and response", ("AIOHTTPSession.send",), ()),
    (
        "botocore: serialising, endpoint, headers",
        ("_convert_to_request_dict", "_resolve_endpoint_ruleset", "_emit_api_params"),
        (),
    ),
    ("botocore/aiobotocore: the rest of the call", ("_make_api_call",), ()),
    ("liveness-audit: per answer (pool, pacing, record)", ("worker_pool.<locals>.worker",), ()),
    ("liveness-audit: the report at the end", ("AuditRun.finish",), ()),
)


def area(names: list[str]) -> str:
    """The area of a sample: one of its frames ends with an area's name (and, for an idle
    wait, one ends with the waiting call's)."""
    for label, anywhere, waiting in AREAS:
        if any(n.endswith(anywhere) for n in names) and (
            not waiting or any(n.endswith(waiting) for n in names)
        ):
            return label
    return "other: event loop, input, set-up"


def profile_summary(path: Path, sessions: int) -> str:
    """Shares of the tool's sampled CPU by area, and the top functions by own time."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    areas: dict[str, float] = {}
    own: dict[str, float] = {}
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            names = [frames[i]["name"] for i in stack]
            where = area(names)
            areas[where] = areas.get(where, 0.0) + weight
            if stack and not where.startswith("idle"):
                leaf = frames[stack[-1]]
                key = f"{leaf['name']} ({leaf.get('file', '?').rsplit('site-packages/', 1)[-1]})"
                own[key] = own.get(key, 0.0) + weight
    busy = sum(w for k, w in areas.items() if not k.startswith("idle"))
    lines = [f"sampled CPU {busy:.1f} s for {sessions:,} sessions (idle waits left out)"]
    for label, weight in sorted(areas.items(), key=lambda kv: -kv[1]):
        if not label.startswith("idle"):
            lines.append(f"  {100 * weight / busy:5.1f}%  {label}")
    lines.append("top functions by own time:")
    for key, weight in sorted(own.items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"  {100 * weight / busy:5.1f}%  {key}")
    return "\n".join(lines)


def profiled(args: argparse.Namespace) -> None:
    """One run of this code under py-spy, summarised (see the module's docstring)."""
    spy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        emulator, url = start_emulator(work, args.sessions, None, args.latency)
        try:
            output = work / "report.parquet"
            tool = command(Path(sys.executable), work / "in.csv", output, url, args)
            line = [str(spy), "record", "--format", "speedscope", "--rate", "200"]
            line += ["-o", str(args.profile), "--", *tool, "--settle", "0"]
            subprocess.run(
                line, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        finally:
            emulator.terminate()
            emulator.wait()
    print(profile_summary(args.profile, args.sessions))


def measure(  # one size, every side, the repeats
    sides: dict[str, Path],
    source: Path,
    size: int,
    work: Path,
    url: str,
    emulator: int,
    args: argparse.Namespace,
) -> list[Measured]:
    results = []
    for i in range(args.repeats):
        runs = []
        for code, python in sides.items():
            folder = work / f"{code}-{size}-{i}"
            folder.mkdir()
            output = folder / "report.parquet"
            line = command(python, source, output, url, args)
            if code == "now":
                line += ["--settle", "0"]  # round 1 asks once; so does this
            runs.append((code, line, output))
        groups = [runs] if args.together else [[run] for run in runs]
        for group in groups:
            control(url, "reset")
            for measured in run_group(group, size, emulator):
                results.append(measured)
                print(show(measured), flush=True)
    return results


def show(m: Measured) -> str:
    return (
        f"{m.code:7} {m.sessions:>9,} sessions  wall {m.wall:6.1f} s  cpu {m.cpu:6.1f} s"
        f"  {m.ms_per_session:5.3f} ms/session  peak rss {m.peak_rss_mb:6.1f} MB"
        f"  rows {m.rows:,}  emulator cpu {m.emulator_cpu:5.1f} s"
        f"  others {m.others_cores:4.2f} cores"
    )


def sizes(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def subset(source: Path, n: int) -> Path:
    """The first ``n`` sessions of the emulator's input, as an input of its own."""
    path = source.with_name(f"in-{n}.csv")
    with source.open() as f, path.open("w") as out:
        for i, line in enumerate(f):
            if i > n:
                break
            out.write(line)
    return path


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
    parser.add_argument(
        "--together", action="store_true", help="start each repeat's runs at once (same load)"
    )
    parser.add_argument("--profile", type=Path, help="instead: py-spy this code, summarise")
    parser.add_argument("--sizes", type=sizes, help="run sizes, e.g. 10000,1000000")
    parser.add_argument("--round1-sizes", type=sizes, help="round 1 only at these sizes")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.profile is not None:
        profiled(args)
        return
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
        f"emulator: {max(args.sizes or [args.sessions]):,} sessions, no quota, "
        f"latency {args.latency * 1000:g} ms;"
        f" run --rate {args.rate:g} --fresh, concurrency "
        f"{args.concurrency or 'each default'}" + (", both codes at once" if args.together else "")
    )
    results: list[Measured] = []
    run_sizes = args.sizes or [args.sessions]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        emulator, url = start_emulator(work, max(run_sizes), None, args.latency)
        try:
            for size in run_sizes:
                source = subset(work / "in.csv", size)
                chosen = {
                    code: python
                    for code, python in sides.items()
                    if code == "now" or args.round1_sizes is None or size in args.round1_sizes
                }
                results += measure(chosen, source, size, work, url, emulator.pid, args)
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
