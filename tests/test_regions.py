"""``--region-column``: one run across regions, each session asked in its own region.

The emulator serves two regions, each session living in one (``SessionNotFoundException``
elsewhere) and each region with its own quota; the tool's Rekognition clients reach it on
one URL and it tells the regions apart by the SigV4 credential scope.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from batch.emulator import EmulatorThread
from batch.engine.regions import known_regions, regional_pool
from batch.engine.stops import Stop
from batch.store.report import METADATA_KEY
from tests.helpers import assert_exactly_as_served, read_report, run_cli

REGIONS = ("eu-west-1", "us-east-1")


def _regional(emulator: EmulatorThread, count: int, **settings: object) -> dict[str, str]:
    """Two regions on the emulator; ``count`` sessions and the region each lives in."""
    emulator.configure(regions=REGIONS, **settings)
    ids = list(emulator.population.ids()[:count])
    return {sid: emulator.population.region(sid, REGIONS) for sid in ids}


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["session_id", "home"])
        out.writerows(rows)
    return path


def test_every_session_is_asked_in_its_own_region_and_the_report_says_which(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    homes = _regional(emulator, 160, tps=40, burst=8)
    assert set(homes.values()) == set(REGIONS)
    source = _write(tmp_path / "in.csv", list(homes.items()))
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, "--region-column", "home")

    assert ran.code == 0, ran.stderr
    rows = read_report(report)
    assert_exactly_as_served(rows, emulator, list(homes))
    assert rows["region"].to_dict() == homes
    regions = emulator.stats()["regions"]
    for region in REGIONS:
        asked = list(homes.values()).count(region)
        assert regions[region]["ok"] == asked
        assert "not_found" not in regions[region]  # no session asked in the wrong region
    provenance = json.loads(pq.read_metadata(report).metadata[METADATA_KEY])
    calls = provenance["regions"]["calls"]
    assert set(calls) == set(REGIONS)
    assert sum(c["requests"] for c in calls.values()) == sum(
        regions[r]["requests"] for r in REGIONS
    )
    assert "regions: eu-west-1 " in provenance["summary"]


def test_region_values_are_normalised_and_bad_ones_rejected_per_row_never_sent(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    homes = _regional(emulator, 6)
    ids = list(homes)
    cells = [
        f"  {homes[ids[0]].upper()} ",  # normalised: strip, lower-case
        homes[ids[1]],
        "mars-1",  # shaped like a region, but no such region
        "",  # blank: an error, not the default region
        "eu-west-1; DROP TABLE",
        homes[ids[5]],
    ]
    source = _write(tmp_path / "in.csv", list(zip(ids, cells, strict=True)))
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report, "--region-column", "home")

    assert ran.code == 0, ran.stderr
    rows = read_report(report)
    sent = [ids[0], ids[1], ids[5]]
    assert_exactly_as_served(rows, emulator, sent)
    assert [rows.loc[sid, "region"] for sid in sent] == [homes[sid] for sid in sent]
    for sid, shown in ((ids[2], "mars-1"), (ids[3], None), (ids[4], "eu-west-1; DROP TABLE")):
        row = rows.loc[sid]
        assert row["error_code"] == "InvalidRegion"
        assert row["attempts"] == 0
        assert pd.isna(row["region"])
        if shown is not None:
            assert shown in row["error_message"]
    stats = emulator.stats()
    assert stats["requests"] == len(sent)  # the rejected rows were never sent
    assert sum(stats["ok_by_session"].get(sid, 0) for sid in ids[2:5]) == 0


def test_a_missing_region_column_is_named_with_its_option(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = _write(tmp_path / "in.csv", [(emulator.population.ids()[0], "eu-west-1")])

    ran = run_cli("run", source, "-o", tmp_path / "r.parquet", "--region-column", "region")

    assert ran.code == 2
    assert "column 'region' not found" in ran.stderr
    assert "--region-column" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_without_the_option_the_region_column_is_there_and_null(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:20])
    source = _write(tmp_path / "in.csv", [(sid, "mars-1") for sid in ids])
    report = tmp_path / "report.parquet"

    ran = run_cli("run", source, "-o", report)

    assert ran.code == 0, ran.stderr
    rows = read_report(report)
    assert_exactly_as_served(rows, emulator, ids)
    assert rows["region"].isna().all()
    provenance = json.loads(pq.read_metadata(report).metadata[METADATA_KEY])
    assert "regions" not in provenance


def test_a_kept_input_column_named_region_is_the_region_column_normalised(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    homes = _regional(emulator, 10)
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["session_id", "region"])
        out.writerows((sid, home.upper()) for sid, home in homes.items())
    report = tmp_path / "report.parquet"

    ran = run_cli(
        "run", source, "-o", report, "--region-column", "region", "--keep-columns", "region"
    )

    assert ran.code == 0, ran.stderr
    assert pq.read_schema(report).names.count("region") == 1
    assert read_report(report)["region"].to_dict() == homes


def test_known_regions_are_rekognitions_in_every_partition() -> None:
    known = known_regions()
    assert {"eu-west-1", "us-east-1", "us-gov-west-1"} <= known
    assert "mars-1" not in known
    assert "EU-WEST-1" not in known  # values are normalised before the lookup


async def test_a_region_whose_sessions_wait_does_not_hold_the_workers_of_another() -> None:
    # The slow region's sessions wait until every fast one is done. One shared pool of
    # two workers would deadlock here (both workers waiting on slow sessions); a pool per
    # region finishes. The timeout only turns such a deadlock into a failure.
    ids = [f"slow-{i}" for i in range(4)] + [f"fast-{i}" for i in range(6)]
    fast_done = asyncio.Event()
    handled: Counter[str] = Counter()

    def region_of(session_id: str) -> str:
        return session_id.partition("-")[0]

    async def handle(session_id: str) -> None:
        region = region_of(session_id)
        if region == "slow":
            await fast_done.wait()
        handled[region] += 1
        if handled["fast"] == 6:
            fast_done.set()

    async with asyncio.timeout(30):
        async with regional_pool(handle, route=region_of, concurrency=2, stop=Stop()) as pool:
            for session_id in ids:
                await pool.put(session_id)

    assert handled == {"slow": 4, "fast": 6}
