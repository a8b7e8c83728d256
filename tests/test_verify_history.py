"""``verify`` keeps the history of edited reports that a run was told to merge anyway."""

from __future__ import annotations

from pathlib import Path

from batch.emulator import EmulatorThread, write_input
from tests.following import captured, drop, follow_args, stop, wait_until
from tests.helpers import edit_one_confidence, run_cli, start_cli


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


def _edited_report(living: EmulatorThread, tmp_path: Path) -> tuple[Path, str]:
    """A report of 10 sessions written by ``run``, then one confidence edited by hand."""
    source, report = tmp_path / "a.csv", tmp_path / "report.parquet"
    write_input(source, living.create_sessions(10, start_after=0.0, finish_after=0.0))
    assert run_cli("run", source, "-o", report, "--settle", "0").code == 0
    return report, edit_one_confidence(report)


def _follow_into(
    living: EmulatorThread, report: Path, tmp_path: Path, *extra: str
) -> tuple[int, str]:
    """``follow`` one new file of 5 sessions into ``report`` until they are in it."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    new = living.create_sessions(5, start_after=0.0, finish_after=0.0)
    drop(inbox, "ids.csv", new)
    proc = start_cli(*follow_args(inbox, report, tmp_path / "state", *extra))
    wait_until(lambda: captured(report, new), proc, "the new sessions published")
    code, _, err = stop(proc)
    return code, err


def test_follow_keeps_the_history_of_an_edit_a_run_accepted(
    living: EmulatorThread, tmp_path: Path
) -> None:
    report, edited = _edited_report(living, tmp_path)
    more = tmp_path / "b.csv"
    write_input(more, living.create_sessions(3, start_after=0.0, finish_after=0.0))
    accepted = run_cli("run", more, "-o", report, "--settle", "0", "--accept-edited-report")
    assert accepted.code == 0, accepted.stderr

    code, err = _follow_into(living, report, tmp_path)

    assert code == 0, err
    verified = run_cli("verify", report)
    assert "intact: 18 rows" in verified.stdout, verified.stdout
    (line,) = [line for line in verified.stdout.splitlines() if line.startswith("history:")]
    assert edited in line


def test_follow_with_accept_edited_report_merges_into_an_edited_report_and_records_it(
    living: EmulatorThread, tmp_path: Path
) -> None:
    report, edited = _edited_report(living, tmp_path)

    code, err = _follow_into(living, report, tmp_path, "--accept-edited-report")

    assert code == 0, err
    assert "although it was edited" in err
    verified = run_cli("verify", report)
    assert "intact: 15 rows" in verified.stdout, verified.stdout
    (line,) = [line for line in verified.stdout.splitlines() if line.startswith("history:")]
    assert "merged into it although it was edited: 1 rows differed" in line
    assert edited in line
