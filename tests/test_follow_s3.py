"""``follow`` from S3 (issue 20 item 3): late-visible keys and overwritten objects.

moto's server, the real aioboto3 client, the emulator. A Firehose delivery whose key sorts
before the last one listed becomes visible later; an object overwritten under its key
gets a new ETag: both are read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from batch.emulator import EmulatorThread
from tests.following import follow_args, put_ids, s3_report, settled_in, stop, wait_until
from tests.helpers import start_cli


def test_a_late_visible_key_and_an_overwritten_object_are_both_read(
    living: EmulatorThread, buckets: Any, tmp_path: Path
) -> None:
    client = buckets
    report = "s3://audits/audit.parquet"
    proc = start_cli(*follow_args("s3://inbox/ids/", report, tmp_path / "state", poll="0.5s"))

    def captured(ids: list[str]) -> Callable[[], bool]:
        return lambda: settled_in(s3_report(client, "audits", "audit.parquet"), ids)

    later = living.create_sessions(3, start_after=0.0, finish_after=0.0)
    put_ids(client, "ids/2026/03/01/10/part-b.csv", later)
    wait_until(captured(later), proc, "the last key captured")
    earlier = living.create_sessions(3, start_after=0.0, finish_after=0.0)
    put_ids(client, "ids/2026/03/01/10/part-a.csv", earlier)  # sorts before b, visible after
    wait_until(captured(earlier), proc, "the late key captured")
    again = living.create_sessions(3, start_after=0.0, finish_after=0.0)
    put_ids(client, "ids/2026/03/01/10/part-b.csv", later + again)  # overwritten: new ETag
    wait_until(captured(again), proc, "the overwritten object's new sessions captured")
    code, _, err = stop(proc)

    assert code == 0, err
    asked = living.stats()["by_session"]
    assert all(asked[sid] == 1 for sid in later + earlier + again)
    assert '"file_changed"' in err
