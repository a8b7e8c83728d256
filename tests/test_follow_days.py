"""``follow`` across midnight (an injected clock) and from an S3 prefix (moto's server)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from batch.cli.common import render_output
from batch.config import load_settings
from batch.emulator import EmulatorThread
from batch.follow.capture import Capture, Holding
from tests.following import (
    DEADLINE,
    captured,
    drop,
    follow_args,
    put_ids,
    report_rows,
    s3_report,
    settled_in,
    stop,
    wait_until,
)
from tests.helpers import start_cli


async def until(check: object, what: str) -> None:
    assert callable(check)
    limit = time.monotonic() + DEADLINE
    while time.monotonic() < limit:
        if check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"never happened: {what}")


def around_midnight(
    tmp_path: Path, moment: list[datetime], settle: str, publish_rows: int = 10_000
) -> tuple[Path, contextlib.AbstractAsyncContextManager[Capture]]:
    """A folder-watching service writing ``audit-{date}.parquet`` in ``tmp_path``, on the
    calendar ``moment[0]`` (moved by the test): its inbox and the service to open.
    Only the rollover, the exit and ``publish_rows`` answers since a publish publish."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    template = str(tmp_path / "audit-{date}.parquet")
    settings = load_settings(
        flags={
            "work_dir": tmp_path / "state",
            "settle": settle,
            "settle_interval": "1s",
            "poll_interval": "1s",
            "publish_every": "1h",  # only the rollover and the exit publish
            "publish_rows": publish_rows,
        }
    )

    def render(at: datetime) -> str:
        return render_output(template, timezone="UTC", now=at)

    opened = Capture.open(inbox, template, render, settings, now=lambda: moment[0])
    return inbox, opened


async def test_a_day_rollover_gives_two_dated_reports_each_complete(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(lifetime=60.0)
    moment = [datetime(2026, 3, 1, 23, 59, 50, tzinfo=UTC)]
    inbox, opened = around_midnight(tmp_path, moment, "30s")
    async with opened as capture:
        task = asyncio.create_task(capture.run())
        first = emulator.create_sessions(2, start_after=0.0, finish_after=0.0)
        late = emulator.create_sessions(
            1, start_after=0.0, finish_after=3.0
        )  # settles after midnight
        drop(inbox, "a.csv", first + late)
        day1 = tmp_path / "audit-2026-03-01.parquet"
        day2 = tmp_path / "audit-2026-03-02.parquet"
        figures = capture.figures
        await until(  # all three answered once (a session's day is its first answer's)
            lambda: (
                figures.captured >= 2
                and figures.sessions_asked == 3
                and not figures.standing["unanswered"]
            ),
            "the first day's answers",
        )
        moment[0] += timedelta(seconds=15)  # midnight passes: day 1 is published
        second = emulator.create_sessions(3, start_after=0.0, finish_after=0.0)
        drop(inbox, "b.csv", second)
        await until(day1.exists, "day 1 published at the rollover")
        await until(lambda: capture.figures.captured >= 6, "every session captured")
        capture.stop.request("test over")
        summary = await asyncio.wait_for(task, DEADLINE)

    assert summary.aborted is None
    assert summary.publish_error is None
    assert sorted(report_rows(day1).index) == sorted(first + late)
    assert captured(day1, first + late)  # the late one stays with the day of its first answer
    assert sorted(report_rows(day2).index) == sorted(second)
    assert captured(day2, second)
    # flat memory: once published, settled sessions are gone from memory, the past day too
    assert str(day1) not in capture.daybook.days
    assert all(not day.rows for day in capture.daybook.days.values())
    assert not capture.daybook.home


def test_sessions_listed_under_an_s3_prefix_are_captured_into_an_s3_report(
    living: EmulatorThread, buckets: Any, tmp_path: Path
) -> None:
    client = buckets
    report = "s3://audits/liveness/date={date}/audit.parquet"
    proc = start_cli(*follow_args("s3://inbox/ids/", report, tmp_path / "state"))
    ids: list[str] = []
    for n in range(5):  # Firehose-like keys: they sort in time order
        new = living.create_sessions(3, start_after=1.0, finish_after=2.5)
        put_ids(client, f"ids/2026/03/01/part-{n:04d}.csv", new)
        ids += new
        time.sleep(1.0)
    key = f"liveness/date={datetime.now(UTC):%Y-%m-%d}/audit.parquet"

    def all_in() -> bool:
        return settled_in(s3_report(client, "audits", key), ids)

    wait_until(all_in, proc, "every session in the S3 report")
    code, _, err = stop(proc)
    assert code == 0, err
    rows = s3_report(client, "audits", key)
    assert len(rows) == len(ids)
    assert rows.loc[ids, "confidence"].notna().all()
    assert max(living.stats()["by_session"][sid] for sid in ids) <= 5


async def test_a_past_day_whose_pending_session_outlived_its_settle_window_closes(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(lifetime=600.0)  # the stuck session stays CREATED for the whole test
    moment = [datetime(2026, 3, 1, 23, 0, 0, tzinfo=UTC)]
    inbox, opened = around_midnight(tmp_path, moment, "2s")
    async with opened as capture:
        task = asyncio.create_task(capture.run())
        done = emulator.create_sessions(1, start_after=0.0, finish_after=0.0)
        stuck = emulator.create_sessions(1, start_after=None, finish_after=None)  # no start
        drop(inbox, "a.csv", done + stuck)
        await until(lambda: capture.figures.captured >= 1, "the settled session's result")
        await until(lambda: not capture.daybook.home, "settling the stuck session given up")
        day1 = tmp_path / "audit-2026-03-01.parquet"
        moment[0] += timedelta(hours=2)  # the next day: day 1 is published, and closes
        await until(day1.exists, "day 1 published at the rollover")
        await until(lambda: str(day1) not in capture.daybook.days, "day 1 closed")
        capture.stop.request("test over")
        summary = await asyncio.wait_for(task, DEADLINE)

    assert summary.aborted is None
    rows = report_rows(day1)
    assert sorted(rows.index) == sorted(done + stuck)
    assert rows.loc[stuck[0], "status"] == "CREATED"  # as last seen, in the report
    assert not capture.daybook.days or all(not d.rows for d in capture.daybook.days.values())


async def test_closed_days_leave_no_session_held_in_memory(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Issue 24 (a week of ``follow`` in flat memory): after each day closes, no entry
    is left for any of its sessions (settled ones, or pending ones given up on), in the
    daybook, the figures' standings, the new IDs' map or the settler."""
    emulator.configure(lifetime=600.0)  # stuck sessions stay CREATED for the whole test
    moment = [datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)]
    inbox, opened = around_midnight(tmp_path, moment, "1s")
    held: list[Holding] = []
    async with opened as capture:
        task = asyncio.create_task(capture.run())
        for day in range(3):
            done = emulator.create_sessions(5, start_after=0.0, finish_after=0.0)
            stuck = emulator.create_sessions(2, start_after=None, finish_after=None)
            drop(inbox, f"day{day}.csv", done + stuck)
            asked, figures = 7 * (day + 1), capture.figures
            await until(
                lambda asked=asked, f=figures: (
                    f.sessions_asked == asked and not f.standing["unanswered"]
                ),
                f"day {day + 1}'s first answers",
            )
            await until(lambda: not capture.daybook.home, f"day {day + 1} settled or given up")
            key = capture.daybook.key_at(moment[0])
            moment[0] += timedelta(days=1)
            await until(lambda key=key: key not in capture.daybook.days, f"day {day + 1} closed")
            held.append(capture.holding())
        capture.stop.request("test over")
        summary = await asyncio.wait_for(task, DEADLINE)

    assert summary.aborted is None
    assert capture.figures.settle_stopped == 6  # the stuck sessions were given up on
    assert held == [Holding(0, 0, 0, 0, 0, 0, 0, 0)] * 3
    assert held[-1].sessions == 0


async def test_a_burst_is_published_within_the_day_so_the_rows_held_stay_under_publish_rows(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Issue 24: a file of a day's sessions at once is not held whole until
    ``publish_every`` (an hour here): every ``publish_rows`` answers the day is published
    and its settled rows leave memory."""
    moment = [datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)]
    inbox, opened = around_midnight(tmp_path, moment, "0s", publish_rows=5)
    report = tmp_path / "audit-2026-03-01.parquet"
    ids = emulator.create_sessions(23, start_after=0.0, finish_after=0.0)
    async with opened as capture:
        task = asyncio.create_task(capture.run())
        drop(inbox, "burst.csv", ids)
        await until(lambda: capture.figures.captured == 23, "every session captured")
        await until(lambda: report.exists() and len(report_rows(report)) >= 19, "published")
        await until(lambda: capture.holding().rows < 5, "the published rows gone from memory")
        held = capture.holding()
        capture.stop.request("test over")
        summary = await asyncio.wait_for(task, DEADLINE)

    assert summary.aborted is None
    assert held.rows < 5  # what stays per session is its ID, not to ask it again today
    assert held.rows + held.settled == 23
    assert held.sessions - held.settled < 5
    assert capture.figures.publishes >= 2  # within the day (5 answers or more each), at exit
    assert sorted(report_rows(report).index) == sorted(ids)
    assert captured(report, ids)
