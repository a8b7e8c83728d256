"""A report that cannot be written once answers are in hand (issue 20, items 9 and 12).

After fetching, a write failure is never exit 2 ("nothing was fetched"): it is 1, with
"rerun the same command to resume" and the journal kept; an S3 report replaced by
something that is not a report names the complete local copy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch.emulator import EmulatorThread, write_input
from batch.store.checkpoint import journal_path
from tests.helpers import DEADLINE, read_report, run_cli, start_cli, the_error_line, tmpfs
from tests.s3server import MotoServer


@pytest.fixture
def few_inodes(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with room for three files (the lock, the spill and the journal), not a fourth."""
    with tmpfs(tmp_path / "disk", "size=2m,nr_inodes=4") as disk:
        yield disk


def test_a_report_whose_temporary_file_cannot_be_made_after_fetching_exits_1_to_resume(
    emulator: EmulatorThread, few_inodes: Path, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:10])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = few_inodes / "r.parquet"

    ran = run_cli("run", source, "--output", output, "--no-progress")

    assert ran.code == 1, ran.stderr
    error = the_error_line(ran.stderr)
    assert "ENOSPC" in error
    assert "rerun the same command to resume" in error
    rows = journal_path(output).read_text().count("\n") - 1
    assert rows == len(ids)  # every answer kept for the rerun


def test_an_s3_report_replaced_by_a_non_report_mid_run_names_the_complete_local_copy(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path
) -> None:
    client = s3.client()
    client.create_bucket(Bucket="reports")
    emulator.configure(lifetime=600.0, expire_unfinished=300.0)
    # They finish 6 s after creation: well after the run's first questions (a loaded
    # machine takes seconds to start the CLI), so the report is replaced while they settle.
    ids = emulator.create_sessions(3, start_after=0.0, finish_after=6.0, fate="SUCCEEDED")
    source = tmp_path / "in.csv"
    write_input(source, ids)
    work = tmp_path / "work"
    proc = start_cli(
        "run",
        source,
        "--output",
        "s3://reports/r.parquet",
        "--work-dir",
        work,
        "--settle",
        "1m",
        "--settle-interval",
        "0.3s",
        "--no-progress",
    )
    limit = time.monotonic() + DEADLINE
    while emulator.stats()["requests"] < 3:  # the run has read the key (absent) and asks
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < limit, "the run never asked"
        time.sleep(0.01)
    client.put_object(Bucket="reports", Key="r.parquet", Body=b"not a parquet file")
    _, stderr = proc.communicate(timeout=DEADLINE)

    assert proc.returncode == 1, stderr
    error = the_error_line(stderr)
    assert "s3://reports/r.parquet" in error
    local = Path(error.split("it is complete at ")[1].split(" ")[0])
    assert local.is_file()
    assert sorted(read_report(local).index) == sorted(ids)
    assert (read_report(local)["status"] == "SUCCEEDED").all()
