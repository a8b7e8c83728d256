"""Paths are normalised once, at the edge: spellings of one place are one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.emulator import EmulatorThread
from batch.store.locations import S3Url, parse_location
from tests.helpers import run_cli


@pytest.mark.parametrize("spelling", ["./missing/r.parquet", "missing//r.parquet"])
def test_a_missing_output_folder_is_created_however_it_is_spelled(
    emulator: EmulatorThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spelling: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "sessions.csv"
    source.write_text("session_id\n" + emulator.population.ids()[0] + "\n")

    ran = run_cli("run", source, "--output", spelling)

    assert ran.code == 0, ran.stderr
    assert (tmp_path / "missing" / "r.parquet").is_file()
    assert not (tmp_path / "missing" / "missing").exists()


def test_a_dated_output_folder_is_still_created(emulator: EmulatorThread, tmp_path: Path) -> None:
    source = tmp_path / "sessions.csv"
    source.write_text("session_id\n" + emulator.population.ids()[0] + "\n")

    ran = run_cli("run", source, "--output", tmp_path / "nights" / "{date}" / "r.parquet")

    assert ran.code == 0, ran.stderr
    assert len(list((tmp_path / "nights").glob("*/r.parquet"))) == 1


@pytest.mark.parametrize(
    "text", ["s3://bucket/a//r.parquet", "s3://bucket//a/r.parquet", "s3://bucket/a/r.parquet"]
)
def test_s3_spellings_of_one_key_are_one_location(text: str) -> None:
    assert parse_location(text, "--output") == S3Url("bucket", "a/r.parquet")


def test_an_s3_prefix_keeps_its_trailing_slash_once() -> None:
    assert parse_location("s3://bucket/a//", "INPUT", object_key=False) == S3Url("bucket", "a/")


@pytest.mark.parametrize("text", ["s3://bucket/a/../r.parquet", "s3://bucket/./r.parquet"])
def test_dot_segments_in_an_s3_key_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"'\.' or '\.\.' segment"):
        parse_location(text, "--output")


def test_a_dot_segment_in_an_s3_output_is_exit_2(tmp_path: Path) -> None:
    source = tmp_path / "sessions.csv"
    source.write_text("session_id\nx\n")

    ran = run_cli("run", source, "--output", "s3://bucket/a/../r.parquet")

    assert ran.code == 2, ran.stderr
    assert "segment" in ran.stderr
