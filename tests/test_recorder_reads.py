"""The kept answers of a report's rows are held, not read back from the spill: this run's
answers meet them in the input's order, not the report's (issue 24's worst case)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch.engine.progress import Tally
from batch.engine.record import Recorder
from batch.model import Status
from batch.store.merge import read_base
from batch.store.report import ReportWriter
from batch.store.row import Row

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ROWS = 1_100  # more than a spill batch (1,024): the first ones leave memory


def test_a_reports_rows_met_again_fold_without_reading_the_spill_back(tmp_path: Path) -> None:
    report = tmp_path / "report.parquet"
    writer = ReportWriter(report)
    ids = [f"s{i:04}" for i in range(ROWS)]
    for sid in ids:
        writer.add(Row(sid, status=Status.IN_PROGRESS, fetched_at=T0, checks=3, attempts=1))
    writer.commit({}, input_sha256="0" * 64)
    recorder = Recorder.open(
        tmp_path / "out.parquet", {"input": "x"}, Tally(), batch_rows=1000, mode=0o600
    )
    try:
        recorder.use_base(read_base(report), ids)
        recorder.spill.path.write_bytes(b"")  # nothing spilled can be read back now
        later = T0 + timedelta(hours=1)
        for sid in reversed(ids):  # another order than the report's
            answer = Row(
                sid, status=Status.SUCCEEDED, confidence=90.0, fetched_at=later, attempts=1
            )
            recorder.add(answer)
        kept = recorder.get("s0000")
        assert kept is not None
        assert kept.status is Status.SUCCEEDED
        assert kept.checks == 4  # the report's 3 and this answer's
        assert kept.fetched_at == later
    finally:
        recorder.close(remove=True)
