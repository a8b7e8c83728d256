"""The parts of ``follow`` on their own: a folder's complete files, an S3 listing that
starts after the last key seen, the record of consumed files, access errors."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from batch.aws.s3 import connect_s3
from batch.config import load_settings
from batch.emulator import EmulatorThread
from batch.errors import AuditError
from batch.follow.consumed import Consumed
from batch.follow.daybook import Daybook, publish_rows
from batch.follow.source import FolderSource, S3Source
from batch.model import Outcome, SessionResult, Status
from batch.store.locations import S3Url
from batch.store.row import Row
from tests.helpers import Raced, run_cli
from tests.s3server import MotoServer


async def test_a_file_still_being_written_is_not_read_until_its_size_is_stable(
    tmp_path: Path,
) -> None:
    source = FolderSource(tmp_path, settle_gap=0.0, watch=False)
    growing = tmp_path / "ids.csv"
    growing.write_text("session_id\n")
    assert await source.ready([]) == []  # first look
    with growing.open("a") as f:
        f.write("0b0e1e0c-2f4a-4b8e-9d2c-0a0b0c0d0e0f\n")
    assert await source.ready([]) == []  # it changed since the first look
    found = await source.ready([])
    assert [f.name for f in found] == ["ids.csv"]
    assert await source.ready(["ids.csv"]) == []  # consumed: never offered again


async def test_hidden_and_temporary_files_are_left_alone_and_files_come_oldest_first(
    tmp_path: Path,
) -> None:
    import os  # noqa: PLC0415  # only this test sets modification times

    source = FolderSource(tmp_path, settle_gap=0.0, watch=False)
    for name, mtime in (("b.csv", 200), ("a.csv", 300), ("c.csv", 100)):
        (tmp_path / name).write_text("session_id\n")
        os.utime(tmp_path / name, (mtime, mtime))
    (tmp_path / ".writing.csv").write_text("x")
    (tmp_path / "part.csv.tmp").write_text("x")
    await source.ready([])
    assert [f.name for f in await source.ready([])] == ["c.csv", "b.csv", "a.csv"]


class Listing:
    """A fake S3 store answering ListObjectsV2 from keys and their LastModified (minutes),
    recording the calls."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.calls: list[dict[str, Any]] = []

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        assert operation == "list_objects_v2"
        self.calls.append(params)
        after = params.get("StartAfter", "")
        keys = sorted(k for k in self.keys if k.startswith(params["Prefix"]) and k > after)
        keys = keys[: params.get("MaxKeys", 1000)]
        contents = [
            {
                "Key": k,
                "ETag": f'"{k}-etag"',
                "LastModified": datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=self.keys[k]),
            }
            for k in keys
        ]
        return {"Contents": contents, "IsTruncated": False}


async def test_an_s3_source_lists_after_a_watermark_trailing_the_newest_key() -> None:
    store = Listing()
    source = S3Source(store, S3Url("inbox", "ids/"), start_after=None)  # type: ignore[arg-type]  # a fake store
    store.keys = {"ids/00/a.csv": 0, "ids/00/b.csv": 1, "other/x.csv": 0}
    first = await source.ready([])
    assert [f.name for f in first] == ["ids/00/a.csv", "ids/00/b.csv"]
    store.keys["ids/10/c.csv"] = 10  # ten minutes later
    assert [source.done(f) for f in first] == [None, None]  # not yet past the lookback
    again = await source.ready({f.name: f.identity for f in first})
    assert [f.name for f in again] == ["ids/10/c.csv"]
    assert [source.done(f) for f in again] == ["ids/00/b.csv"]  # five minutes behind c
    await source.ready({"ids/10/c.csv": again[0].identity})
    assert store.calls[-1]["StartAfter"] == "ids/00/b.csv"


async def test_a_key_that_becomes_visible_late_before_the_last_key_is_still_listed() -> None:
    store = Listing()
    source = S3Source(store, S3Url("inbox", ""), start_after=None)  # type: ignore[arg-type]  # a fake store
    store.keys = {"00/b.csv": 0}
    taken: dict[str, str | None] = {}
    for found in await source.ready(taken):
        source.done(found)
        taken[found.name] = found.identity
    store.keys["00/a.csv"] = 1  # sorts before b, visible a minute later
    assert [f.name for f in await source.ready(taken)] == ["00/a.csv"]


def test_consumed_files_are_remembered_across_a_restart_and_forgotten_once_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "consumed.jsonl"
    consumed = Consumed(path)
    consumed.add("a.csv")
    consumed.add("bad.csv", "rejected")
    consumed.close()
    with path.open("a") as f:
        f.write('{"name": "torn')  # the process died mid-line: that file is read again
    again = Consumed(path)
    assert set(again) == {"a.csv", "bad.csv"}
    assert again.state("bad.csv") == "rejected"
    again.keep_only(["bad.csv"])  # a.csv left the folder
    assert set(again) == {"bad.csv"}
    again.advance("m")  # S3: every key up to "m" is consumed
    assert "bad.csv" not in again
    again.close()
    third = Consumed(path)
    assert third.after == "m"
    third.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_an_access_error_stops_the_service_at_once_with_exit_3(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(deny_all=True)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ids.csv").write_text("session_id\n" + "\n".join(emulator.population.ids()[:3]))
    ran = run_cli(
        "follow",
        inbox,
        "--output",
        tmp_path / "r.parquet",
        "--work-dir",
        tmp_path / "s",
        "--poll-interval",
        "0.2",
    )
    assert ran.code == 3
    assert "AccessDenied" in ran.stderr


def answer(session_id: str, status: str, at: datetime) -> Row:
    result = SessionResult(session_id, Status(status), 91.5, None, ())
    return Row.of(Outcome(session_id, result, None, None, 1, at, True))


async def test_a_publish_that_loses_the_race_merges_again_and_keeps_both_writers_answers(
    s3: MotoServer, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket="audits")
    url = S3Url("audits", "follow/audit.parquet")
    now = datetime.now(UTC)
    ours = [answer("00000000-0000-4000-8000-00000000000a", "SUCCEEDED", now)]
    theirs = [answer("00000000-0000-4000-8000-00000000000b", "FAILED", now)]
    async with connect_s3(load_settings(env={})) as store:
        rival = tmp_path / "rival.parquet"
        racing = Raced(store, lambda _: publish_rows(theirs, url, rival, store, {}))
        rows = await publish_rows(ours, url, tmp_path / "ours.parquet", racing, {})  # type: ignore[arg-type]  # the store, racing
    assert racing.uploads == 2  # the first, conditional on the ETag read, lost
    assert rows == 2
    body = s3.client().get_object(Bucket="audits", Key=url.key)["Body"].read()
    report = pd.read_parquet(io.BytesIO(body)).set_index("session_id")
    assert sorted(report["status"]) == ["FAILED", "SUCCEEDED"]


async def test_a_file_dropped_into_a_watched_folder_wakes_the_source_before_the_poll_interval(
    tmp_path: Path,
) -> None:
    source = FolderSource(tmp_path, settle_gap=0.0, watch=True)
    await source.check()
    try:
        waiting = asyncio.create_task(source.wait(3600))  # an hour unless the watch wakes it
        limit = asyncio.get_running_loop().time() + 30
        while not waiting.done():  # until the watch (set up on its own thread) sees one
            assert asyncio.get_running_loop().time() < limit, "the watch never woke the source"
            (tmp_path / ".ids.csv.tmp").write_text("session_id\n")
            (tmp_path / ".ids.csv.tmp").rename(tmp_path / "ids.csv")
            await asyncio.sleep(0.1)
    finally:
        source.close()
    assert await source.ready([]) == []  # first look
    assert [f.name for f in await source.ready([])] == ["ids.csv"]


def test_consumed_names_of_a_queue_are_forgotten_after_its_retention(tmp_path: Path) -> None:
    path = tmp_path / "consumed.jsonl"
    old = {"name": "s3://inbox/old.csv", "state": "done", "id": "e1", "at": 1000.0}
    path.write_text(json.dumps(old) + "\n")
    consumed = Consumed(path)
    consumed.add("s3://inbox/new.csv", identity="e2")
    assert consumed.identities() == {"s3://inbox/old.csv": "e1", "s3://inbox/new.csv": "e2"}

    consumed.forget_before(15 * 86_400)

    assert consumed.identities() == {"s3://inbox/new.csv": "e2"}
    consumed.close()


async def test_a_failed_publish_is_tried_again_after_publish_rows_more_answers_not_at_each(
    tmp_path: Path,
) -> None:
    """A day that could not be published (its folder cannot be made) keeps its rows, and
    is not crowded again until as many answers came again: the service does not try a
    failing publish at every answer."""
    blocked = tmp_path / "day"
    blocked.write_text("a file where the day's folder goes")
    state = tmp_path / "state"
    book = Daybook(
        lambda _: str(blocked / "audit.parquet"),
        timezone="UTC",
        state=state,
        work_dir=state,
        store=None,
        provenance={},
    )
    try:
        for n in range(3):
            book.add(Row.invalid(f"not-an-id-{n}", "not a session ID"))
        assert book.crowded(3)
        (day,) = book.days.values()
        with pytest.raises(AuditError):
            await book.publish(day)
        assert not book.crowded(3)
        assert len(day.rows) == 3  # kept, and in the journal
        book.add(Row.invalid("not-an-id-3", "not a session ID"))
        book.add(Row.invalid("not-an-id-4", "not a session ID"))
        assert not book.crowded(3)
        book.add(Row.invalid("not-an-id-5", "not a session ID"))
        assert book.crowded(3)
    finally:
        book.close()
