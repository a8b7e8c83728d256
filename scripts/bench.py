"""Benchmark liveness-audit against the quota, and against the boto3 ways of doing it.

Starts the emulator (its own process) with a token-bucket quota and latency, then runs,
on the same sessions, one after another:

- ``audit@Q``      liveness-audit with ``--rate`` = the quota
- ``audit@3Q``     liveness-audit misconfigured at three times the quota
- ``audit@none``   liveness-audit with no ``--rate`` given (the default, 5/s, is lower than
                   most quotas, so this one only shows the ceiling the default imposes)
- ``boto3-adaptive`` / ``boto3-standard``: boto3 in a thread pool with botocore's retry
                   modes (``scripts/peer_boto3.py``)
- ``audit@share0.5`` liveness-audit with ``--quota Q --quota-share 0.5`` (no rate)
- ``audit-drop``   liveness-audit at ``--rate`` = Q while the quota halves for a while and
                   comes back (``--drop``)

liveness-audit runs with its default ``--concurrency`` (a ceiling; the pool sizes itself)
unless ``--concurrency`` is given; boto3 with ``--threads`` (32).

``--scenario NAME`` runs one figure of issue 14 in one command, boto3 adaptive beside the
project in the same run (see :data:`SCENARIOS`; ``--sessions`` may shrink it to try it):
``q150`` (Q = 150, burst Q/5, 20 s), ``q50`` (60 s), ``q500`` (burst 100, 10,000
sessions), ``q5`` (5 minutes), ``production`` (production calls at 40% of Q drawing
from the same bucket: production calls throttled per 1,000 audit requests) and
``regions`` (two regions with a quota of Q each, sessions spread over both, one run with
``--region-column``: the share is of the aggregate 2Q; no boto3 peer, it has no regions).

``--grid quick|subset|full`` runs issue 21's grid instead: service timings (round trip,
lookup, jitter, fast or slow throttles) x quotas x bucket bursts, the four contenders in
each cell (``scripts/bench_grid.py``).

For each: share of the quota achieved (200 answers per second while active, over Q),
share of requests throttled, production calls throttled per 1,000 audit requests (with a
background load), wall time, CPU milliseconds per request and peak RSS of the
client process (from ``wait4``), and sessions answered exactly as the emulator serves them.

Usage: .venv/bin/python scripts/bench.py [--sessions 3000] [--quota 50] [--latency 0.05]
           [--burst B] [--background-tps T]
           [--runs audit@Q,audit@3Q,boto3-adaptive,boto3-standard] [--drop]
       .venv/bin/python scripts/bench.py --scenario q150|q50|q500|q5|production|regions
           [--sessions N]
       .venv/bin/python scripts/bench.py --grid quick|subset|full [--grid-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from batch.emulator import Population

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "AKIDBENCH",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Scenario:
    """One figure of issue 14: the emulator's quota and load, and the clients compared."""

    quota: float
    burst: float | None  # None: the emulator's default, max(1, Q / 10)
    sessions: int
    runs: str
    background: float = 0.0  # production calls per second on the same bucket
    latency: float = 0.05
    regions: tuple[str, ...] = ()  # sessions spread over these, a quota of Q in each


_ALL = "audit@none,audit@Q,audit@3Q,boto3-adaptive"
REGIONS = ("eu-west-1", "us-east-1")
SCENARIOS = {
    "q150": Scenario(150, 30, 3000, _ALL),  # 20 s at Q
    "q50": Scenario(50, 10, 3000, "audit@Q,audit@none,boto3-adaptive"),  # 60 s
    "q500": Scenario(500, 100, 10_000, "audit@Q,audit@none,boto3-adaptive"),
    "q5": Scenario(5, 1, 1500, "audit@none,audit@Q,boto3-adaptive"),  # 5 minutes
    "production": Scenario(
        150, 30, 3000, "audit@none,audit@Q,audit@share0.5,boto3-adaptive", background=60
    ),
    "regions": Scenario(150, 30, 6000, "audit@Q,audit@none", regions=REGIONS),  # 20 s at 2Q
}


@dataclass
class Result:
    name: str
    sessions: int
    quota_share: float
    throttled_share: float
    production_per_1000: float | None  # production calls throttled per 1,000 audit requests
    wall: float
    cpu_ms_per_request: float
    peak_rss_mb: float
    correct: int
    requests: int
    timeline: list[list[int]]


def audit_command(
    source: Path, output: Path, concurrency: int | None, url: str, *extra: str
) -> list[str]:
    """The liveness-audit command line every run uses (default concurrency: None)."""
    pool = [] if concurrency is None else ["--concurrency", str(concurrency)]
    return [
        PYTHON,
        "-m",
        "batch",
        "run",
        str(source),
        "--output",
        str(output),
        *pool,
        "--no-progress",
        "--fresh",
        "--settle",  # each session asked once, as the boto3 peers do: the emulator's
        "0",  # timeless CREATED/IN_PROGRESS sessions would be asked for minutes
        "--endpoint-url",
        url,
        *extra,
    ]


def control(url: str, route: str, body: dict[str, Any] | None = None) -> Any:
    data = None if route == "stats" else json.dumps(body or {}).encode()
    request = urllib.request.Request(f"{url}/_emulator/{route}", data=data)  # noqa: S310  # loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # loopback
        return json.loads(response.read())


def start_emulator(
    work: Path,
    sessions: int,
    quota: float | None,
    latency: float,
    burst: float | None = None,
    background: float = 0.0,
    regions: tuple[str, ...] = (),
    timing: str | None = None,
) -> tuple[Any, str]:
    """The emulator as its own process (writing ``work/in.csv``); returns it and its URL.

    ``timing``: a ``--timing`` spec (batch/emulator/timing.py) instead of a fixed latency."""
    url_file = work / "url"
    command = [
        PYTHON,
        "-m",
        "batch",
        "emulator",
        "--sessions",
        str(sessions),
        "--seed",
        "11",
        "--latency",
        str(latency),
        "--url-file",
        str(url_file),
        "--write-input",
        str(work / "in.csv"),
    ]
    if quota is not None:
        command += ["--tps", str(quota)]
    if burst is not None:
        command += ["--burst", str(burst)]
    if background:
        command += ["--background-tps", str(background)]
    if regions:
        command += ["--regions", ",".join(regions)]
    if timing is not None:
        command += ["--timing", timing]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=ENV)
    for _ in range(600):
        if url_file.exists():
            return proc, url_file.read_text().strip()
        time.sleep(0.1)
    raise SystemExit("the emulator did not start")


def run_client(command: list[str], schedule: list[tuple[float, dict[str, Any]]], url: str):
    start = time.monotonic()
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def changes() -> None:
        for at, body in schedule:
            time.sleep(max(0.0, at - (time.monotonic() - start)))
            control(url, "config", body)

    changer = threading.Thread(target=changes, daemon=True)
    changer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"{command[:4]} failed with {code}: {err[-2000:]}")
    return wall, usage, err


def correct_count(population: Population, results: pd.DataFrame) -> int:
    good = 0
    for row in results.itertuples():
        expected = population.response(row.session_id)
        if expected is None:
            continue
        same_status = row.status == expected["Status"]
        want = expected.get("Confidence")
        got = row.confidence
        same_conf = (want is None and pd.isna(got)) or (want is not None and got == want)
        good += bool(same_status and same_conf)
    return good


def measure(
    name: str,
    command: list[str],
    output: Path,
    url: str,
    population: Population,
    quota: float,
    schedule: list[tuple[float, dict[str, Any]]] | None = None,
) -> Result:
    control(url, "reset")
    wall, usage, _ = run_client(command, schedule or [], url)
    stats = control(url, "stats")
    control(url, "reset")  # the quota as it was, for the next run
    if output.suffix == ".parquet":
        results = pd.read_parquet(output)
    else:  # json, not pandas' JSON reader: it rounds floats unless asked not to
        results = pd.DataFrame([json.loads(line) for line in output.read_text().splitlines()])
    ok = stats["outcomes"]["ok"]
    active = stats["active_seconds"] or wall
    requests = stats["requests"]
    production = stats["production"]
    return Result(
        name=name,
        sessions=len(results),
        quota_share=ok / active / quota,
        throttled_share=stats["outcomes"]["throttled"] / max(1, requests),
        production_per_1000=(
            1000 * production["throttled"] / max(1, requests) if production["calls"] else None
        ),
        wall=wall,
        cpu_ms_per_request=1000 * (usage.ru_utime + usage.ru_stime) / max(1, requests),
        peak_rss_mb=usage.ru_maxrss / 1024,
        correct=correct_count(population, results),
        requests=requests,
        timeline=stats["timeline"],
    )


def client_command(
    name: str, source: Path, work: Path, url: str, args: argparse.Namespace
) -> tuple[list[str], Path]:
    """The command line of run ``name`` and the file it writes its answers to."""
    q = args.quota
    if name.startswith("audit"):
        output = work / "out.parquet"
        command = audit_command(source, output, args.concurrency, url)
        if args.regions:  # the rate and quota options are per region
            command += ["--region-column", "region"]
        factor = {"audit@Q": 1.0, "audit@3Q": 3.0}.get(name)
        if factor is not None:
            command += ["--rate", str(q * factor)]
        elif name.startswith("audit@share"):
            command += ["--quota", str(q), "--quota-share", name.removeprefix("audit@share")]
        elif name != "audit@none":
            raise SystemExit(f"unknown run {name!r}")
        return command, output
    output = work / "out.jsonl"
    mode = name.removeprefix("boto3-")
    command = [PYTHON, str(ROOT / "scripts" / "peer_boto3.py"), str(source), str(output)]
    command += ["--mode", mode, "--threads", str(args.threads), "--endpoint-url", url]
    return command, output


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), help="one figure of issue 14")
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--quota", type=float)
    parser.add_argument("--burst", type=float, help="the bucket's capacity [max(1, Q/10)]")
    parser.add_argument("--background-tps", type=float, help="production calls/s [0]")
    parser.add_argument("--latency", type=float)
    parser.add_argument(
        "--regions",
        type=lambda text: tuple(r.strip() for r in text.split(",") if r.strip()),
        help="spread the sessions over these regions, a quota of Q each (--region-column)",
    )
    parser.add_argument("--concurrency", type=int, help="liveness-audit's [its default]")
    parser.add_argument("--threads", type=int, default=32, help="boto3's thread pool [32]")
    parser.add_argument(
        "--runs",
        help="comma-separated: audit@Q, audit@3Q, audit@none, audit@share0.5, boto3-adaptive, "
        "boto3-standard",
    )
    parser.add_argument("--drop", action="store_true", help="also run the quota-drop scenario")
    parser.add_argument("--json", type=Path, help="append the results as JSON lines here")
    parser.add_argument("--timeline", action="store_true", help="print 200s/throttles per second")
    parser.add_argument(
        "--grid",
        choices=("quick", "subset", "full"),
        help="issue 21's grid of service timings (scripts/bench_grid.py): quick (every "
        "change), subset (the hard cells), full",
    )
    parser.add_argument(
        "--grid-seconds", type=float, default=10.0, help="a grid cell's length at Q [10]"
    )
    parser.add_argument(
        "--scale",
        help="instead: cost growth, e.g. 1000,10000,100000 sessions, no quota, --rate 5000",
    )
    args = parser.parse_args()
    plain = Scenario(50, None, 3000, "audit@Q,audit@3Q,boto3-adaptive,boto3-standard")
    scenario = SCENARIOS[args.scenario] if args.scenario else plain
    for name, value in (
        ("sessions", scenario.sessions),
        ("quota", scenario.quota),
        ("burst", scenario.burst),
        ("background_tps", scenario.background),
        ("latency", scenario.latency),
        ("runs", scenario.runs),
        ("regions", scenario.regions),
    ):
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    args = arguments()
    if args.grid:
        from bench_grid import run_grid  # noqa: PLC0415  # the grid's own module, beside this

        run_grid(args)
        return
    if args.scale:
        scale([int(n) for n in args.scale.split(",")], args.concurrency)
        return
    q = args.quota
    population = Population(11, args.sessions)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    burst = args.burst if args.burst is not None else max(1, q / 10)
    print(
        f"emulator: {args.sessions} sessions, quota {q:g}/s (burst {burst:g}), "
        f"latency {args.latency * 1000:g} ms"
        + (f", production {args.background_tps:g}/s" if args.background_tps else "")
        + (f", in each of {', '.join(args.regions)}" if args.regions else "")
        + (f" [scenario {args.scenario}]" if args.scenario else "")
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        emulator, url = start_emulator(
            work, args.sessions, q, args.latency, args.burst, args.background_tps, args.regions
        )
        source = work / "in.csv"
        if args.regions:
            source = with_regions(source, population, args.regions)
        aggregate = q * max(1, len(args.regions))  # each region has its own quota
        try:
            for name in [r for r in args.runs.split(",") if r]:
                command, output = client_command(name, source, work, url, args)
                results.append(measure(name, command, output, url, population, aggregate))
                print(row(results[-1]), flush=True)
                if args.timeline:
                    print("  " + timeline(results[-1]))
            if args.drop:
                results.append(drop_run(source, work, url, population, args))
        finally:
            emulator.terminate()
            emulator.wait()
    if args.json:
        with args.json.open("a") as f:
            for r in results:
                line = {**r.__dict__, "timeline": None, "quota": q, "latency": args.latency}
                f.write(json.dumps({**line, "scenario": args.scenario}) + "\n")


def with_regions(source: Path, population: Population, regions: tuple[str, ...]) -> Path:
    """A copy of the input with each session's region (where the emulator keeps it)."""
    frame = pd.read_csv(source, dtype=str)
    frame["region"] = [population.region(sid, regions) for sid in frame["session_id"]]
    target = source.with_name("in-regions.csv")
    frame.to_csv(target, index=False)
    return target


def drop_run(
    source: Path, work: Path, url: str, population: Population, args: argparse.Namespace
) -> Result:
    """liveness-audit at ``--rate`` = Q while the quota halves for a third of the run."""
    q = args.quota
    output = work / "out.parquet"
    command = audit_command(source, output, args.concurrency, url, "--rate", str(q))
    third = args.sessions / q / 3
    schedule = [(third, {"tps": q / 2}), (2 * third, {"tps": q})]
    drop = measure("audit-drop", command, output, url, population, q, schedule)
    print(
        f"{row(drop)}\n  quota {q:g} -> {q / 2:g} at {third:.0f}s -> {q:g} at "
        f"{2 * third:.0f}s; 200s/throttles per second: "
        + "  ".join(f"{s}:{ok}/{th}" for s, ok, th in drop.timeline)
    )
    return drop


def scale(sizes: list[int], concurrency: int | None) -> None:
    """CPU per request and peak RSS of liveness-audit as the session count grows."""
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    pool = "its default" if concurrency is None else str(concurrency)
    print(f"emulator: no quota, no latency; liveness-audit --rate 5000, --concurrency {pool}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        emulator, url = start_emulator(work, max(sizes), None, 0.0)
        try:
            ids = (work / "in.csv").read_text().splitlines()[1:]
            for n in sizes:
                source = work / f"in-{n}.csv"
                source.write_text("session_id\n" + "\n".join(ids[:n]) + "\n")
                output = work / f"out-{n}.parquet"
                command = audit_command(source, output, concurrency, url, "--rate", "5000")
                control(url, "reset")
                wall, usage, _ = run_client(command, [], url)
                stats = control(url, "stats")
                cpu = usage.ru_utime + usage.ru_stime
                rows = len(pd.read_parquet(output, columns=["session_id"]))
                print(
                    f"{n:>7} sessions: wall {wall:6.1f}s  {stats['requests'] / wall:6.0f} req/s"
                    f"  cpu {cpu:6.1f}s = {1000 * cpu / n:5.2f} ms/session"
                    f"  peak rss {usage.ru_maxrss / 1024:6.1f} MB  report rows {rows}",
                    flush=True,
                )
        finally:
            emulator.terminate()
            emulator.wait()


def timeline(r: Result) -> str:
    return "200s/throttles per second: " + " ".join(f"{ok}/{th}" for _, ok, th in r.timeline)


def row(r: Result) -> str:
    production = (
        ""
        if r.production_per_1000 is None
        else f"  production throttled {r.production_per_1000:6.2f}/1000"
    )
    return (
        f"{r.name:15} quota share {r.quota_share:6.3f}  throttled {100 * r.throttled_share:5.2f}%"
        f"{production}"
        f"  wall {r.wall:6.1f}s  cpu {r.cpu_ms_per_request:5.2f} ms/req"
        f"  peak rss {r.peak_rss_mb:6.1f} MB  correct {r.correct}/{r.sessions}"
        f"  requests {r.requests}"
    )


if __name__ == "__main__":
    main()
