"""``follow`` over simulated days: does its memory stay flat as days pass (issue 24)?

Starts the emulator (its own process, no quota, 1 ms latency) with ``--days`` x
``--per-day`` sessions of its population (settled ones and ones that stay pending for
good), and runs ``follow`` in this process with an injected clock. Each simulated day:
a file of that day's IDs is dropped into the inbox; once every ID has a first answer and
no session is being settled any more (``--settle`` seconds of real time each), the clock
jumps a day: the rollover publishes the day and closes it (its pending rows past their
settle window leave memory with it). Within the day the shipped settings publish (every
``publish_rows`` answers: the whole day's file comes at once, so the shipped
``publish_every`` of real time rarely passes; ``--publish-every`` and ``--publish-rows``
override them: ``--publish-every 24h --publish-rows 10000000`` holds a whole day). After
each day: RSS now and the peak so far (``/proc/self/status``), the days open and the rows
held, and what tells a leak of Python objects from the allocator's slack: the memory
blocks Python has allocated (``sys.getallocatedblocks``) and the objects the collector
tracks, after a collection; pymalloc's arenas and glibc's, by what they hold; the day's
wall and CPU time. The IDs are read from the emulator's file a day at a time, so the
script itself holds none of them between days.

Usage: .venv/bin/python scripts/bench_follow_week.py [--days 7] [--per-day 20000]
           [--settle 3s] [--publish-every 24h] [--publish-rows 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import itertools
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from bench import ENV, start_emulator  # scripts/bench.py, beside this file

from batch.cli.common import render_output
from batch.config import load_settings
from batch.follow.capture import Capture, FollowSummary


def memory() -> tuple[float, float]:
    """(RSS, peak RSS) of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def until(check: object, limit: float, service: asyncio.Task[FollowSummary]) -> None:
    """Until ``check()`` holds; SystemExit when the service ended first (e.g. aborted
    after a run of failures: a machine too loaded for the connect timeout) or ``limit``
    seconds passed."""
    assert callable(check)
    deadline = time.monotonic() + limit
    while not check():
        if service.done():
            summary = service.result()
            raise SystemExit(f"the service ended: {summary.stop_reason} ({summary.figures.line()})")
        if time.monotonic() > deadline:
            raise SystemExit("the service did not get there in time")
        await asyncio.sleep(0.2)


def _stderr_of(call: Callable[[], object]) -> str:
    """What ``call`` writes to file descriptor 2 (C code's stderr)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(out.fileno(), 2)
        try:
            call()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        return out.read().decode()


def allocators() -> str:
    """Where the resident memory is, in MB: pymalloc's arenas (``sys._debugmallocstats``)
    and glibc's arenas (``malloc_stats``: the main one and the threads', system bytes
    and in use; mapped blocks)."""
    mb = 1024 * 1024
    text = _stderr_of(sys._debugmallocstats)
    arenas = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", text)
    used = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    line = "pymalloc ?"
    if arenas and used:
        line = (
            f"pymalloc {int(arenas[1].replace(',', ''))} arenas, "
            f"{int(used[1].replace(',', '')) / mb:.1f} MB in blocks"
        )
    try:
        stats = _stderr_of(ctypes.CDLL(None).malloc_stats)
    except (OSError, AttributeError):
        return line
    system = [int(n) for n in re.findall(r"^system bytes\s*=\s*(\d+)", stats, re.M)]
    in_use = [int(n) for n in re.findall(r"^in use bytes\s*=\s*(\d+)", stats, re.M)]
    mapped = re.search(r"^max mmap regions\s*=\s*(\d+)", stats, re.M)
    arenas_text = ", ".join(
        f"{s / mb:.1f}/{u / mb:.1f}" for s, u in zip(system[:-1], in_use[:-1], strict=True)
    )
    return (
        f"{line}; glibc arenas (system/in use) {arenas_text}; "
        f"total {system[-1] / mb:.1f}/{in_use[-1] / mb:.1f}"
        + (f", max mmap regions {mapped[1]}" if mapped else "")
    )


def python_heap() -> tuple[int, int]:
    """(memory blocks Python has allocated, objects the collector tracks) after a collection."""
    gc.collect()
    return sys.getallocatedblocks(), len(gc.get_objects())


async def week(  # the benchmark's arguments, named
    work: Path, ids: TextIO, days: int, per_day: int, settle: str, publish: dict[str, object]
) -> None:
    inbox = work / "inbox"
    inbox.mkdir()
    template = str(work / "audit-{date}.parquet")
    moment = [datetime(2026, 3, 1, 1, 0, 0, tzinfo=UTC)]
    settings = load_settings(
        flags={
            "work_dir": work / "state",
            "settle": settle,
            "settle_interval": "1s",
            "poll_interval": "1s",
            "rate": 5000,
        }
        | {k: v for k, v in publish.items() if v is not None}  # else the shipped
    )

    def render(at: datetime) -> str:
        return render_output(template, timezone="UTC", now=at)

    opened = Capture.open(inbox, template, render, settings, now=lambda: moment[0])
    async with opened as capture:
        task = asyncio.create_task(capture.run())
        for day in range(days):
            wall, cpu = time.monotonic(), time.process_time()
            chunk = "".join(itertools.islice(ids, per_day))
            (inbox / f"day{day}.csv").write_text("session_id\n" + chunk)
            del chunk
            asked = (day + 1) * per_day
            f = capture.figures
            await until(
                lambda f=f, asked=asked: f.sessions_asked >= asked and not f.standing["unanswered"],
                7200,
                task,
            )
            await until(lambda: not capture.daybook.home, 600, task)
            key = capture.daybook.key_at(moment[0])
            moment[0] += timedelta(days=1)
            await until(lambda key=key: key not in capture.daybook.days, 600, task)
            rss, peak = memory()
            held = sum(len(d.rows) for d in capture.daybook.days.values())
            blocks, objects = python_heap()
            print(
                f"day {day + 1}: {asked:,} sessions asked, captured {f.captured:,}, "
                f"settling given up {f.settle_stopped:,}, publishes {f.publishes}; "
                f"RSS {rss:.1f} MB, peak {peak:.1f} MB; "
                f"days open {len(capture.daybook.days)}, rows held {held:,}; "
                f"python blocks {blocks:,}, objects {objects:,}; "
                f"wall {time.monotonic() - wall:.0f} s, CPU {time.process_time() - cpu:.0f} s, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            print(f"  {allocators()}", flush=True)
        capture.stop.request("benchmark over")
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=20_000)
    parser.add_argument("--settle", default="3s")
    parser.add_argument("--publish-every", help="default: the shipped setting")
    parser.add_argument("--publish-rows", type=int, help="default: the shipped setting")
    args = parser.parse_args()
    os.environ.update({k: v for k, v in ENV.items() if k.startswith("AWS_")})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # the emulator too
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        emulator, url = start_emulator(work, args.days * args.per_day, None, 0.001)
        os.environ["AWS_ENDPOINT_URL_REKOGNITION"] = url
        try:
            print(f"{args.days} days x {args.per_day:,} sessions, load {os.getloadavg()[0]:.2f}")
            with (work / "in.csv").open(encoding="utf-8") as ids:
                ids.readline()  # the header
                asyncio.run(
                    week(
                        work,
                        ids,
                        args.days,
                        args.per_day,
                        args.settle,
                        {"publish_every": args.publish_every, "publish_rows": args.publish_rows},
                    )
                )
        finally:
            emulator.terminate()
            emulator.wait()
        print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
