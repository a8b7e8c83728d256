"""The ledger at volume: columns survive later writers, types evolve, edits are refused.

The real CLI against the emulator, as everywhere; ``follow``'s publish through its own
function (:func:`batch.follow.daybook.publish_rows`), the one its service calls.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batch.emulator import EmulatorThread, write_input
from batch.follow.daybook import publish_rows
from batch.model import Outcome, SessionResult, Status
from batch.store.manifest import verify_report
from batch.store.report import METADATA_KEY, read_provenance
from batch.store.row import Row
from tests.helpers import edit_one_confidence, run_cli

RECONCILE = ("--keep-columns", "customer_ref", "--app-decision-column", "app_decision")
CARRIED = ("customer_ref", "app_decision", "service_decision", "agrees", "disagreement")


def requests(emulator: EmulatorThread) -> int:
    return int(emulator.stats()["requests"])


def columns_of(
    report: Path, ids: list[str], names: tuple[str, ...]
) -> dict[str, tuple[object, ...]]:
    table = pq.read_table(report, columns=["session_id", *names])
    rows = {row["session_id"]: row for row in table.to_pylist()}
    return {sid: tuple(rows[sid][name] for name in names) for sid in ids}


def test_kept_and_reconciliation_columns_survive_a_later_run_without_the_options(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:60])
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_input(first, ids[:40], reconcile_with=emulator.population)
    write_input(second, ids[30:])  # 10 sessions of the first input asked again, no options
    report = tmp_path / "report.parquet"
    assert run_cli("run", first, "-o", report, *RECONCILE, "--settle", "0").code == 0
    before = columns_of(report, ids[:40], CARRIED)
    assert all(values[0] is not None for values in before.values())  # customer_ref kept

    ran = run_cli("run", second, "-o", report, "--settle", "0", "--fresh")

    assert ran.code == 0, ran.stderr
    assert columns_of(report, ids[:40], CARRIED) == before
    assert pq.read_metadata(report).num_rows == 60
    assert verify_report(report).ok


def test_kept_columns_and_region_survive_a_follow_publish(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:30])
    source = tmp_path / "a.csv"
    write_input(source, ids, reconcile_with=emulator.population)
    report = tmp_path / "report.parquet"
    assert run_cli("run", source, "-o", report, *RECONCILE, "--settle", "0").code == 0
    names = (*CARRIED, "region")
    before = columns_of(report, ids, names)
    # follow answers one session of the report again, and a new one
    now = datetime.now(UTC)
    again = SessionResult(ids[0], Status.EXPIRED, None, None, ())
    new = SessionResult("00000000-0000-4000-8000-00000000abcd", Status.EXPIRED, None, None, ())
    rows = [Row.of(Outcome(r.session_id, r, None, None, 1, now, True)) for r in (again, new)]

    count = asyncio.run(publish_rows(rows, report, report, None, {"writer": "follow"}))

    assert count == 31
    after = columns_of(report, ids, names)
    assert after == before  # the session follow answered again keeps its columns too
    assert verify_report(report).ok


def kept_input(path: Path, ids: list[str], refs: pa.Array) -> Path:
    pq.write_table(pa.table({"session_id": ids, "customer_ref": refs}), path)
    return path


def test_a_type_change_is_cast_when_no_value_is_lost(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:20])
    report = tmp_path / "report.parquet"
    narrow = kept_input(tmp_path / "a.parquet", ids[:10], pa.array(range(10), pa.int32()))
    wide = kept_input(tmp_path / "b.parquet", ids[10:], pa.array(range(10, 20), pa.int64()))
    keep = ("--keep-columns", "customer_ref", "--settle", "0")
    assert run_cli("run", narrow, "-o", report, *keep).code == 0

    ran = run_cli("run", wide, "-o", report, *keep)

    assert ran.code == 0, ran.stderr
    table = pq.read_table(report)
    assert table.schema.field("customer_ref").type == pa.int64()
    refs = dict(
        zip(table["session_id"].to_pylist(), table["customer_ref"].to_pylist(), strict=True)
    )
    assert [refs[sid] for sid in ids] == list(range(20))


def test_a_type_change_that_would_lose_values_is_refused_before_any_call(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:20])
    report = tmp_path / "report.parquet"
    numbers = kept_input(tmp_path / "a.parquet", ids[:10], pa.array(range(10), pa.int64()))
    text = kept_input(tmp_path / "b.parquet", ids[10:], pa.array([f"c{i}" for i in range(10)]))
    keep = ("--keep-columns", "customer_ref", "--settle", "0")
    assert run_cli("run", numbers, "-o", report, *keep).code == 0
    sent, written = requests(emulator), report.read_bytes()

    ran = run_cli("run", text, "-o", report, *keep)

    assert ran.code == 2
    assert "column 'customer_ref' is int64 in the report and string in this run" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert requests(emulator) == sent  # refused before any call
    assert report.read_bytes() == written
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_edited_report_is_refused_naming_the_rows_and_how_to_proceed(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:40])
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_input(first, ids[:30])
    write_input(second, ids[30:])
    report = tmp_path / "report.parquet"
    assert run_cli("run", first, "-o", report, "--settle", "0").code == 0
    edited = edit_one_confidence(report)
    sent, written = requests(emulator), report.read_bytes()

    ran = run_cli("run", second, "-o", report, "--settle", "0")

    assert ran.code == 2
    assert f"1 rows differ from the ones written (sessions {edited})" in ran.stderr
    assert "--accept-edited-report" in ran.stderr
    assert requests(emulator) == sent
    assert report.read_bytes() == written


def test_accept_edited_report_merges_and_records_the_rows_for_every_later_report(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:50])
    inputs = [tmp_path / f"{n}.csv" for n in "abc"]
    for source, part in zip(inputs, (ids[:30], ids[30:40], ids[40:]), strict=True):
        write_input(source, part)
    report = tmp_path / "report.parquet"
    assert run_cli("run", inputs[0], "-o", report, "--settle", "0").code == 0
    edited = edit_one_confidence(report)

    ran = run_cli("run", inputs[1], "-o", report, "--settle", "0", "--accept-edited-report")

    assert ran.code == 0, ran.stderr
    assert verify_report(report).ok  # signed again, with the history in the provenance
    (accepted,) = read_provenance(report)["accepted_edits"]
    assert accepted["session_ids"] == [edited]
    assert accepted["report_rows_differ"] == 1
    assert run_cli("run", inputs[2], "-o", report, "--settle", "0").code == 0
    assert read_provenance(report)["accepted_edits"] == [accepted]  # kept by later runs
    assert json.loads(pq.read_metadata(report).metadata[METADATA_KEY])["accepted_edits"]


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "a.csv"
    write_input(source, list(emulator.population.ids()[:5]))
    report = tmp_path / "report.parquet"
    stale = tmp_path / ".report.parquet.0123456789ab.tmp"
    stale.write_bytes(b"half a report")
    other = tmp_path / ".other.parquet.0123456789ab.tmp"
    other.write_bytes(b"not ours")

    assert run_cli("run", source, "-o", report, "--settle", "0").code == 0

    assert not stale.exists()
    assert other.exists()
