"""Benchmark ``liveness-audit follow``: capture lag, and the share captured before expiry,
when sessions arrive faster than the quota for a while.

Starts the emulator (in this process, its own thread) with a token-bucket quota of
``--quota`` requests/s and sessions that live ``--lifetime`` seconds (each started 1 s and
finished ``--finish`` s after creation). For ``--burst`` seconds the "application" creates
``--arrival`` sessions per second (more than the quota can ask) and drops a CSV of them
into a folder every second; then ``--calm`` seconds at ``--calm-arrival`` per second, so
the backlog can drain (oldest first). ``follow`` runs as a subprocess with ``--rate`` =
the quota, and gets SIGTERM ``--drain`` seconds after the last file.

``--source`` chooses where the files go: ``folder`` (the default), ``s3`` (objects under
``s3://inbox/ids/`` in moto's server, listed by ``follow s3://inbox/ids/``) or ``sqs``
(the same objects, announced by S3 Event Notifications to an SQS queue that ``follow
sqs://QUEUE_URL`` receives from). moto's server runs as a child process for the last two.

Prints: sessions created, captured with a result (share), first answers already EXPIRED or
gone, capture lag (mean, max: file found -> first answer) from the service's ``end``
event, requests, throttles, wall time.

``--timing SPEC`` gives the service the timing model of issue 21 (batch/emulator/timing.py:
round trip, processing for successes, fixed / uniform / lognormal), ``--bucket`` the
bucket's capacity [max(1, Q/10)], and ``--no-rate`` runs ``follow`` without ``--rate``,
finding the quota itself.

Usage: .venv/bin/python scripts/bench_follow.py [--quota 20] [--arrival 30] [--burst 60]
           [--calm 60] [--calm-arrival 5] [--lifetime 180] [--finish 4] [--drain 30]
           [--source folder|s3|sqs] [--timing SPEC] [--bucket B] [--no-rate]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pandas as pd

from batch.emulator import EmulatorSettings, EmulatorThread
from batch.emulator.timing import parse_timing

ENV = {
    **os.environ,
    "AWS_ACCESS_KEY_ID": "AKIDBENCH",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


Drop = Callable[[int, list[str]], None]


def folder_drop(folder: Path) -> Drop:
    def drop(n: int, ids: list[str]) -> None:
        tmp = folder / f".ids-{n:05d}.csv.tmp"
        tmp.write_text("session_id\n" + "".join(f"{sid}\n" for sid in ids))
        tmp.rename(folder / f"ids-{n:05d}.csv")

    return drop


def s3_drop(client: Any) -> Drop:
    """Firehose-like keys: an hour folder, then a name ending in a random string."""

    def drop(n: int, ids: list[str]) -> None:
        body = "session_id\n" + "".join(f"{sid}\n" for sid in ids)
        key = f"ids/2026/12/04/20/ids-{n:05d}-{uuid.uuid4().hex[:8]}.csv"
        client.put_object(Bucket="inbox", Key=key, Body=body)

    return drop


@contextlib.contextmanager
def moto_server(root: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log = (root / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)  # noqa: S310  # loopback
                break
            except OSError:
                time.sleep(0.1)  # waiting for a child process to listen
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def source_for(kind: str, root: Path, moto: str | None) -> tuple[str, Drop, dict[str, str]]:
    """SOURCE for follow, how to drop a file there, and the environment it needs."""
    if kind == "folder":
        inbox = root / "inbox"
        inbox.mkdir()
        return str(inbox), folder_drop(inbox), {}
    assert moto is not None
    keys = {"aws_access_key_id": "AKIDBENCH", "aws_secret_access_key": "bench"}
    client = boto3.client("s3", endpoint_url=moto, region_name="us-east-1", **keys)
    client.create_bucket(Bucket="inbox")
    env = {"AWS_ENDPOINT_URL_S3": moto, "AWS_ENDPOINT_URL_SQS": moto}
    if kind == "s3":
        return "s3://inbox/ids/", s3_drop(client), env
    sqs = boto3.client("sqs", endpoint_url=moto, region_name="us-east-1", **keys)
    url = sqs.create_queue(QueueName="ids")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    client.put_bucket_notification_configuration(
        Bucket="inbox",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return f"sqs://{url}", s3_drop(client), env


def arrive(
    server: EmulatorThread, drop: Drop, phases: list[tuple[float, float]], finish: float
) -> list[str]:
    """Create sessions at each phase's rate (per second, for its seconds), dropping files."""
    ids: list[str] = []
    owed, n = 0.0, 0
    for seconds, rate in phases:
        for _ in range(int(seconds)):
            owed += rate
            count, owed = int(owed), owed - int(owed)
            new = server.create_sessions(count, start_after=1.0, finish_after=finish)
            if new:
                drop(n, new)
                n += 1
            ids += new
            time.sleep(1.0)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quota", type=float, default=20.0)
    parser.add_argument("--arrival", type=float, default=30.0)
    parser.add_argument("--burst", type=float, default=60.0)
    parser.add_argument("--calm", type=float, default=60.0)
    parser.add_argument("--calm-arrival", type=float, default=5.0)
    parser.add_argument("--lifetime", type=float, default=180.0)
    parser.add_argument("--finish", type=float, default=4.0)
    parser.add_argument("--drain", type=float, default=30.0, help="seconds before SIGTERM")
    parser.add_argument("--source", choices=["folder", "s3", "sqs"], default="folder")
    parser.add_argument("--timing", help="the service's timing, e.g. latency=0.15,...")
    parser.add_argument("--bucket", type=float, help="the bucket's capacity [max(1, Q/10)]")
    parser.add_argument("--no-rate", action="store_true", help="follow finds the quota")
    args = parser.parse_args()

    settings = EmulatorSettings(
        sessions=0,
        seed=1,
        tps=args.quota,
        burst=args.bucket,
        lifetime=args.lifetime,
        timing=None if args.timing is None else parse_timing(args.timing),
    )
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(EmulatorThread(settings))
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        moto = stack.enter_context(moto_server(root)) if args.source != "folder" else None
        source, drop, extra = source_for(args.source, root, moto)
        report = root / "audit.parquet"
        command = [
            sys.executable, "-m", "batch", "follow", source, "--output", str(report),
            "--work-dir", str(root / "state"),
            *([] if args.no_rate else ["--rate", f"{args.quota:g}"]),
            "--poll-interval", "1s", "--publish-every", "10s", "--settle-interval", "5s",
            "--log-format", "json", "--endpoint-url", server.url,
        ]  # fmt: skip
        started = time.monotonic()
        env = {**ENV, **extra}
        proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        phases = [(args.burst, args.arrival), (args.calm, args.calm_arrival)]
        ids = arrive(server, drop, phases, args.finish)
        time.sleep(args.drain)  # the backlog drains, the last sessions settle
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        wall = time.monotonic() - started
        end = next(json.loads(line) for line in err.splitlines()[::-1] if '"event": "end"' in line)
        rows = pd.read_parquet(report).set_index("session_id")
        got = rows.reindex(ids)
        results = int(got["status"].isin(["SUCCEEDED", "FAILED"]).sum())
        calm = f"then {args.calm_arrival:g}/s for {args.calm:g}s"
        print(f"source {args.source}; quota {args.quota:g}/s; arrivals {args.arrival:g}/s "
              f"for {args.burst:g}s, {calm}; lifetime {args.lifetime:g}s; "
              f"timing {args.timing or 'fixed 0'}; "
              f"{'no --rate' if args.no_rate else '--rate = the quota'}")  # fmt: skip
        print(f"sessions created        {len(ids)}")
        print(f"captured with a result  {results} ({100 * results / max(1, len(ids)):.1f}%)")
        print(f"expired before capture  {end['expired_before_capture']}")
        print(f"capture lag             mean {end['capture_lag_mean_seconds']:.2f}s, "
              f"max {end['capture_lag_max_seconds']:.2f}s")  # fmt: skip
        print(f"requests                {end['requests']} ({end['throttled']} throttled)")
        print(f"wall                    {wall:.0f}s, exit {proc.returncode}")


if __name__ == "__main__":
    main()
