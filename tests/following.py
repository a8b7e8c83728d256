"""What the tests of ``liveness-audit follow`` share: dropping ID files (a folder or an
S3 bucket), reading the report as it grows (local or S3), the service's command line,
waiting for a condition (failing at once if the service ended) and stopping it."""

from __future__ import annotations

import io
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from batch.store.report import read_table

DEADLINE = 45.0
RESULTS = ("SUCCEEDED", "FAILED")


def ids_csv(ids: list[str]) -> str:
    return "session_id\n" + "".join(f"{sid}\n" for sid in ids)


def drop(folder: Path, name: str, ids: list[str]) -> None:
    """An ID file as an application writes it: a hidden temporary name, renamed in."""
    tmp = folder / f".{name}.tmp"
    tmp.write_text(ids_csv(ids))
    tmp.rename(folder / name)


def put_ids(client: Any, key: str, ids: list[str], bucket: str = "inbox") -> dict[str, Any]:
    """An ID file put in S3 (``client``: boto3's); the PutObject answer."""
    answer: dict[str, Any] = client.put_object(Bucket=bucket, Key=key, Body=ids_csv(ids))
    return answer


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["session_id", "status"]).set_index("session_id")


def report_rows(path: Path) -> pd.DataFrame:
    if not path.exists():
        return _empty()
    frame: pd.DataFrame = read_table(path).to_pandas()  # one version of it, whole
    return frame.set_index("session_id")


def s3_report(client: Any, bucket: str, key: str) -> pd.DataFrame:
    """The S3 report's rows by session (none while it is not there)."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return _empty()
    return pd.read_parquet(io.BytesIO(body)).set_index("session_id")


def settled_in(rows: pd.DataFrame, ids: list[str]) -> bool:
    """Every one of ``ids`` in ``rows`` with a result."""
    return all(sid in rows.index and rows.loc[sid, "status"] in RESULTS for sid in ids)


def captured(path: Path, ids: list[str]) -> bool:
    return settled_in(report_rows(path), ids)


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[str] | None, what: str) -> None:
    limit = time.monotonic() + DEADLINE
    while time.monotonic() < limit:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"follow ended early: {proc.communicate()}")
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"never happened: {what}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=DEADLINE)
    return proc.returncode, out, err


def follow_args(
    source: Path | str, report: Path | str, state: Path, *extra: str, poll: str = "1s"
) -> list[str | Path]:
    """``follow`` settling for 30 s every second, publishing every second, JSON logs."""
    return [
        "follow",
        source,
        "--output",
        report,
        "--work-dir",
        state,
        "--settle",
        "30s",
        "--settle-interval",
        "1s",
        "--poll-interval",
        poll,
        "--publish-every",
        "1s",
        "--log-format",
        "json",
        *extra,
    ]
