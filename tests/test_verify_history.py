"""``verify`` keeps the history of edited reports that a run was told to merge anyway."""

from __future__ import annotations

from pathlib import Path

from batch.emulator import EmulatorThread, write_input
from tests.helpers import edit_one_confidence, run_cli


def test_verify_shows_the_edit_an_earlier_run_accepted_after_the_report_is_signed_again(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:40])
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_input(first, ids[:30])
    write_input(second, ids[30:])
    report = tmp_path / "report.parquet"
    assert run_cli("run", first, "-o", report, "--settle", "0").code == 0
    assert "history:" not in run_cli("verify", report).stdout
    edited = edit_one_confidence(report)
    merged = run_cli("run", second, "-o", report, "--settle", "0", "--accept-edited-report")
    assert merged.code == 0, merged.stderr

    verified = run_cli("verify", report)

    assert verified.code == 0, verified.stderr
    assert "intact: 40 rows" in verified.stdout
    (line,) = [line for line in verified.stdout.splitlines() if line.startswith("history:")]
    assert "merged into it although it was edited: 1 rows differed" in line
    assert edited in line
