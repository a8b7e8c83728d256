"""Reading session IDs: spreadsheet CSVs, Parquet, normalisation, and broken input."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch.errors import InputError
from batch.store.inputs import SESSION_ID_PATTERN, display_value, normalize, read_plan

A = "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
B = "11111111-2222-4333-8444-555555555555"
C = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_spreadsheet_export_bom_crlf_quotes_extra_columns(tmp_path: Path) -> None:
    text = (
        "\ufeffname,session_id,note\r\n"
        f'"Doe, Jane",{A},"said ""hi"", left"\r\n'
        f'x," {B.upper()} ",y\r\n'
        f'"multi\r\nline",{C},z\r\n'
    )
    plan = read_plan(write(tmp_path / "in.csv", text.encode()))
    assert plan.valid == (A, B, C)
    assert plan.counts() == {"rows": 3, "valid": 3, "duplicates": 0, "invalid": 0, "blank": 0}


def test_duplicates_collapse_after_normalising_and_blanks_are_counted(tmp_path: Path) -> None:
    text = f"session_id\n{A}\n{A.upper()}\n  {A}  \n\n   \n{B}\n"
    plan = read_plan(write(tmp_path / "in.csv", text.encode()))
    assert plan.valid == (A, B)
    assert plan.duplicates == 2
    assert plan.blank == 2


def test_invalid_ids_are_kept_apart_with_reasons(tmp_path: Path) -> None:
    text = f"session_id\n{A}\nnot-an-id\n{A[:-1]}z\n{'x' * 500}\nnot-an-id\n"
    plan = read_plan(write(tmp_path / "in.csv", text.encode()))
    assert plan.valid == (A,)
    values = [i.value for i in plan.invalid]
    assert values[0] == "not-an-id"
    assert values[1] == A[:-1] + "z"
    assert values[2].startswith("x" * 64)
    assert values[2].endswith("(+436 chars)")
    assert "expected 36" in plan.invalid[0].reason
    assert "does not match" in plan.invalid[1].reason
    assert plan.duplicates == 1


def test_numeric_looking_cells_stay_text(tmp_path: Path) -> None:
    plan = read_plan(write(tmp_path / "in.csv", b"session_id\n0012\n1e5\n"))
    assert [i.value for i in plan.invalid] == ["0012", "1e5"]


def test_parquet_input_and_dictionary_columns(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    table = pa.table({"id": pa.array([A, None, B, A]).dictionary_encode(), "n": [1, 2, 3, 4]})
    pq.write_table(table, path)
    plan = read_plan(path, column="id")
    assert plan.valid == (A, B)
    assert (plan.blank, plan.duplicates, plan.format) == (1, 1, "parquet")


def test_large_input_is_read_in_batches(tmp_path: Path) -> None:
    ids = [str(uuid.UUID(int=i, version=4)) for i in range(150_000)]
    path = tmp_path / "big.csv"
    path.write_text("session_id\n" + "\n".join(ids) + "\n")
    plan = read_plan(path)
    assert len(plan.valid) == 150_000
    assert plan.valid[-1] == ids[-1]


def test_header_only_input_is_an_empty_plan(tmp_path: Path) -> None:
    plan = read_plan(write(tmp_path / "in.csv", b"session_id\r\n"))
    assert plan.valid == ()
    assert plan.rows == 0


def test_format_flag_overrides_the_extension(tmp_path: Path) -> None:
    plan = read_plan(write(tmp_path / "ids.txt", f"session_id\n{A}\n".encode()), fmt="csv")
    assert plan.valid == (A,)


def test_sha256_of_the_input_is_recorded(tmp_path: Path) -> None:
    plan = read_plan(write(tmp_path / "in.csv", f"session_id\n{A}\n".encode()))
    assert len(plan.sha256) == 64


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("missing.csv", None, "input file not found"),
        ("empty.csv", b"", "empty"),
        ("ids.txt", b"session_id\n", "cannot tell the format"),
        ("latin1.csv", "session_id\ncaf\u00e9\n".encode("latin-1"), "not UTF-8"),
        ("wrong.csv", b"id,name\n1,2\n", "column 'session_id' not found; columns present: 'id'"),
        ("bad.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
    ],
)
def test_broken_input_gives_one_clear_line(
    tmp_path: Path, name: str, data: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(InputError, match=message) as caught:
        read_plan(path)
    assert "\n" not in str(caught.value)


def test_directory_is_not_an_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        read_plan(tmp_path / ".", fmt="csv")


def test_truncated_parquet_and_non_text_column(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"session_id": [A, B] * 1000}), good)
    cut = write(tmp_path / "cut.parquet", good.read_bytes()[:-100])
    with pytest.raises(InputError, match="Parquet"):
        read_plan(cut)
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"session_id": [1, 2]}), numbers)
    with pytest.raises(InputError, match="holds int64, not text"):
        read_plan(numbers)


@given(st.text())
def test_normalised_ids_are_valid_exactly_when_they_match(cell: str) -> None:
    value = normalize(cell)
    assert value == value.strip()
    if SESSION_ID_PATTERN.fullmatch(value):
        assert len(value) == 36
        assert value == value.lower()
    shown = display_value(value)
    assert len(shown) <= 64 * 4 + 32
    assert all(c.isprintable() for c in shown)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)))
def test_any_csv_cells_round_trip_through_the_reader(
    tmp_path_factory: pytest.TempPathFactory, cells: list[str]
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["session_id", "other"])
    for cell in cells:
        writer.writerow([cell, "x,y"])
    path = tmp_path_factory.mktemp("prop") / "in.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    plan = read_plan(path)
    normalised = [normalize(c) for c in cells]
    assert plan.rows == len(cells)
    assert plan.blank == sum(1 for v in normalised if not v)
    assert plan.valid == tuple(
        dict.fromkeys(v for v in normalised if SESSION_ID_PATTERN.fullmatch(v))
    )
    assert plan.rows == plan.blank + plan.duplicates + len(plan.valid) + len(plan.invalid)
