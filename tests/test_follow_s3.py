"""``follow`` from S3 (issue 20 item 3): late-visible keys and overwritten objects.

moto's server, the real aioboto3 client, the emulator. A Firehose delivery whose key sorts
before the last one listed becomes visible later; an object overwritten under its key
gets a new ETag: both are read.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from batch.emulator import EmulatorThread
from tests.helpers import start_cli
from tests.s3server import MotoServer
from tests.test_follow import RESULTS, stop, wait_until


def _report(client: Any) -> pd.DataFrame:
    try:
        body = client.get_object(Bucket="audits", Key="audit.parquet")["Body"].read()
    except client.exceptions.NoSuchKey:
        return pd.DataFrame(columns=["session_id", "status"]).set_index("session_id")
    return pd.read_parquet(io.BytesIO(body)).set_index("session_id")


def _put(client: Any, key: str, ids: list[str]) -> None:
    body = "session_id\n" + "".join(f"{sid}\n" for sid in ids)
    client.put_object(Bucket="inbox", Key=key, Body=body)


def test_a_late_visible_key_and_an_overwritten_object_are_both_read(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    emulator.configure(lifetime=60.0)
    client = s3.client()
    client.create_bucket(Bucket="inbox")
    client.create_bucket(Bucket="audits")
    proc = start_cli(
        "follow",
        "s3://inbox/ids/",
        "--output",
        "s3://audits/audit.parquet",
        "--work-dir",
        tmp_path / "state",
        "--settle",
        "30s",
        "--settle-interval",
        "1s",
        "--poll-interval",
        "0.5s",
        "--publish-every",
        "1s",
        "--log-format",
        "json",
    )

    def captured(ids: list[str]) -> Any:
        def check() -> bool:
            rows = _report(client)
            return all(sid in rows.index and rows.loc[sid, "status"] in RESULTS for sid in ids)

        return check

    later = emulator.create_sessions(3, start_after=0.0, finish_after=0.0)
    _put(client, "ids/2026/03/01/10/part-b.csv", later)
    wait_until(captured(later), proc, "the last key captured")
    earlier = emulator.create_sessions(3, start_after=0.0, finish_after=0.0)
    _put(client, "ids/2026/03/01/10/part-a.csv", earlier)  # sorts before b, visible after
    wait_until(captured(earlier), proc, "the late key captured")
    again = emulator.create_sessions(3, start_after=0.0, finish_after=0.0)
    _put(client, "ids/2026/03/01/10/part-b.csv", later + again)  # overwritten: new ETag
    wait_until(captured(again), proc, "the overwritten object's new sessions captured")
    code, _, err = stop(proc)

    assert code == 0, err
    asked = emulator.stats()["by_session"]
    assert all(asked[sid] == 1 for sid in later + earlier + again)
    assert '"file_changed"' in err
