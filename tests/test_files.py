"""What a run writes: never through a planted symlink, owner-only, replaced atomically."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from batch.emulator import EmulatorThread
from batch.errors import OutputError
from batch.store.checkpoint import Journal, RunLock, journal_path
from batch.store.files import AtomicFile, atomic_write, dir_mode, parse_mode, private_dir
from batch.store.inputs import read_plan
from batch.store.report import ReportWriter
from tests.helpers import run_cli

VICTIM = "precious data\n"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("session_id\n" + "".join(f"{sid}\n" for sid in ids))
    return path


@pytest.fixture
def source(emulator: EmulatorThread, tmp_path: Path) -> Path:
    return write_ids(tmp_path / "sessions.csv", list(emulator.population.ids()[:20]))


def planted(link: Path, tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM)
    link.symlink_to(victim)
    return victim


def test_a_planted_lock_symlink_leaves_its_target_unchanged_and_the_run_exits_2(
    source: Path, tmp_path: Path
) -> None:
    output = tmp_path / "r.parquet"
    victim = planted(tmp_path / ".r.parquet.lock", tmp_path)

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 2, ran.stderr
    assert victim.read_text() == VICTIM
    assert "symbolic link" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not output.exists()


def test_a_planted_journal_symlink_leaves_its_target_unchanged_and_the_run_exits_2(
    source: Path, tmp_path: Path
) -> None:
    output = tmp_path / "r.parquet"
    victim = planted(journal_path(output), tmp_path)

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 2, ran.stderr
    assert victim.read_text() == VICTIM
    assert "checkpoint" in ran.stderr
    assert "symbolic link" in ran.stderr


def test_a_report_path_that_is_a_symlink_is_refused_and_its_target_kept(
    source: Path, tmp_path: Path
) -> None:
    output = tmp_path / "r.parquet"
    victim = planted(output, tmp_path)

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 2, ran.stderr
    assert victim.read_text() == VICTIM
    assert output.is_symlink()
    assert "symbolic link" in ran.stderr


def test_a_report_path_that_is_a_fifo_is_refused(source: Path, tmp_path: Path) -> None:
    output = tmp_path / "r.parquet"
    os.mkfifo(output)

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 2, ran.stderr
    assert "not a regular file" in ran.stderr


def test_a_run_leaves_its_report_lock_and_journal_owner_only_and_metrics_0644(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:10])
    emulator.script(ids[0], ["server_error"] * 2)  # unresolved: the journal is kept
    source = write_ids(tmp_path / "sessions.csv", ids)
    output = tmp_path / "r.parquet"
    metrics = tmp_path / "audit.prom"
    old_umask = os.umask(0o022)  # what a default shell gives; the files must not follow it
    try:
        ran = run_cli(
            "run", source, "--output", output, "--max-attempts", "2", "--metrics-file", metrics
        )
    finally:
        os.umask(old_umask)

    assert ran.code == 1, ran.stderr
    left = [output, journal_path(output)]
    assert {path.name: oct(mode_of(path)) for path in left} == {path.name: "0o600" for path in left}
    assert not (tmp_path / ".r.parquet.lock").exists()  # released and removed at the end
    assert oct(mode_of(metrics)) == "0o644"  # counts, no biometrics: the collector reads it
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_journal_row_that_cannot_go_into_the_report_is_refused_naming_the_journal(
    source: Path, tmp_path: Path
) -> None:
    output = tmp_path / "r.parquet"
    plan = read_plan(source, column="session_id", fmt="auto")
    identity = {
        "input_sha256": plan.sha256,
        "input_column": plan.column,
        "input_format": plan.format,
    }
    Journal.open(journal_path(output), identity).close()
    poisoned = {
        "session_id": plan.valid[0],
        "status": "SUCCEEDED",
        "attempts": 1,
        "reference_bbox_left": "not a number",
        "audit_image_count": 0,
        "audit_images": [],
    }
    with journal_path(output).open("a") as f:
        f.write(json.dumps(poisoned) + "\n")

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 2, ran.stderr
    assert f"checkpoint {journal_path(output)} line 2" in ran.stderr
    assert "move it away" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_an_atomic_write_that_fails_leaves_the_target_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "m.prom"
    target.write_text("old\n")

    def write_half() -> None:
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        write_half()
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.prom"]


def test_the_operators_file_mode_is_applied_whatever_the_umask(tmp_path: Path) -> None:
    mode = parse_mode("0640")
    old_umask = os.umask(0o077)
    try:
        with atomic_write(tmp_path / "a", mode=mode) as f:
            f.write(b"x")
        with RunLock(tmp_path / "r.parquet", mode=mode):
            lock_mode = mode_of(tmp_path / ".r.parquet.lock")
        writer = ReportWriter(tmp_path / "r.parquet", mode=mode)
        folder = private_dir(tmp_path / "made" / "here", mode=mode)
    finally:
        os.umask(old_umask)
    writer.abandon()
    assert mode_of(tmp_path / "a") == 0o640
    assert lock_mode == 0o640
    assert mode_of(folder) == 0o750
    assert dir_mode(0o600) == 0o700


@pytest.mark.parametrize("text", ["abc", "0777", "0400", "0606", "0644x", "4600"])
def test_a_file_mode_that_is_not_a_private_read_write_octal_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="0640"):
        parse_mode(text)


def test_the_temporary_file_is_new_and_owner_only(tmp_path: Path) -> None:
    atomic = AtomicFile(tmp_path / "r.parquet")
    try:
        assert mode_of(atomic.tmp) == 0o600
        assert atomic.tmp.parent == tmp_path
    finally:
        atomic.discard()
    assert not atomic.tmp.exists()


def test_a_lock_on_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".r.parquet.lock").mkdir()
    with pytest.raises(OutputError):
        RunLock(tmp_path / "r.parquet").__enter__()
