"""``liveness-audit run`` end to end: the real CLI and aioboto3 client against the emulator."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.emulator import EmulatorThread, write_input
from batch.store.report import METADATA_KEY, read_provenance, report_schema
from tests.helpers import ACCESS_KEY, SECRET_KEY, assert_exactly_as_served, read_report, run_cli

UNKNOWN = "00000000-0000-4000-8000-000000000000"


def stat(emulator: EmulatorThread) -> dict[str, Any]:
    data = emulator.stats()
    return data if isinstance(data, dict) else data.__dict__


def test_every_status_exactly_as_the_service_returned(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:300])
    source = tmp_path / "sessions.csv"
    write_input(source, [*ids, UNKNOWN])
    output = tmp_path / "report.parquet"

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 0, ran.stderr
    report = read_report(output)
    assert len(report) == 301
    assert set(report["status"].dropna()) == {
        "CREATED",
        "IN_PROGRESS",
        "SUCCEEDED",
        "FAILED",
        "EXPIRED",
    }
    assert_exactly_as_served(report, emulator, ids)
    missing = report.loc[UNKNOWN]
    assert missing["error_code"] == "SessionNotFoundException"
    assert missing["attempts"] == 1
    assert pd.isna(missing["status"])
    assert (report["attempts"] == 1).all()
    assert "status: CREATED" in ran.stdout
    assert "SessionNotFoundException 1" in ran.stdout
    assert f"report: {output}" in ran.stdout


def test_report_schema_and_provenance(emulator: EmulatorThread, tmp_path: Path) -> None:
    ids = list(emulator.population.ids()[:20])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"

    assert run_cli("run", source, "--output", output, "--rate", "250").code == 0

    schema = pq.read_schema(output)
    assert schema.remove_metadata() == report_schema()  # SCHEMA, then a null region
    assert schema.field("fetched_at").type == pa.timestamp("us", tz="UTC")
    assert not any(pa.types.is_binary(f.type) for f in schema)  # no image bytes
    meta = read_provenance(output)
    assert json.loads(pq.read_metadata(output).metadata[METADATA_KEY]) == meta
    assert meta["input_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert meta["input_path"] == str(source.resolve())
    assert meta["settings"]["rate"] == 250
    assert meta["tool_version"]
    assert meta["run_id"]
    assert meta["finished_at"] >= meta["started_at"]
    assert meta["input_counts"]["valid"] == 20
    assert not list(tmp_path.glob(".*.tmp")), "temporary report left behind"


def test_invalid_duplicate_and_blank_cells(emulator: EmulatorThread, tmp_path: Path) -> None:
    a, b = emulator.population.ids()[:2]
    source = tmp_path / "in.csv"
    long_cell = "\u00ff" * 80
    source.write_text(
        f"session_id,who\n{a},x\n {a.upper()} ,y\n,z\nnot-an-id,w\n{b},u\n{long_cell},v\n"
    )
    output = tmp_path / "report.parquet"

    ran = run_cli("run", source, "--output", output)

    assert ran.code == 0, ran.stderr
    report = read_report(output)
    assert sorted(report.index[report["error_code"] == "InvalidSessionId"]) == sorted(
        ["not-an-id", "\u00ff" * 64 + "...(+16 chars)"]
    )
    assert (report.loc[report["error_code"] == "InvalidSessionId", "attempts"] == 0).all()
    assert report.loc[a, "attempts"] == 1
    assert len(report) == 4
    assert stat(emulator)["requests"] == 2  # the invalid cells were never sent


def test_parquet_input(emulator: EmulatorThread, tmp_path: Path) -> None:
    ids = list(emulator.population.ids()[:30])
    source = tmp_path / "in.parquet"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", output).code == 0
    assert_exactly_as_served(read_report(output), emulator, ids)


def test_header_only_input_writes_an_empty_report(emulator: EmulatorThread, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("session_id\r\n")
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output)
    assert ran.code == 0, ran.stderr
    table = pq.read_table(output)
    assert table.num_rows == 0
    assert table.schema.remove_metadata() == report_schema()
    assert stat(emulator)["requests"] == 0


def test_dry_run_sends_nothing_and_writes_nothing(emulator: EmulatorThread, tmp_path: Path) -> None:
    a, b = emulator.population.ids()[:2]
    source = tmp_path / "in.csv"
    source.write_text(f"session_id\n{a}\n{a}\n\nbad\n{b}\n")
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output, "--dry-run")
    assert ran.code == 0
    assert "5 rows: 2 valid, 1 duplicate, 1 invalid, 1 blank" in ran.stdout
    assert not output.exists()
    assert stat(emulator)["requests"] == 0


def test_throttling_recovers_and_nothing_is_fetched_twice(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(tps=150, burst=5, throttle_error="mixed")
    ids = list(emulator.population.ids()[:600])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"

    ran = run_cli("run", source, "--output", output, "--rate", "450", "--max-attempts", "30")

    assert ran.code == 0, ran.stderr
    stats = stat(emulator)
    assert stats["outcomes"]["throttled"] > 0
    assert all(stats["ok_by_session"][sid] == 1 for sid in ids)
    assert_exactly_as_served(read_report(output), emulator, ids)
    assert f"{stats['outcomes']['throttled']} throttled" in ran.stdout


def test_server_errors_and_dropped_connections_are_retried(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(error_rate=0.05, drop_rate=0.03)
    ids = list(emulator.population.ids()[:400])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"

    ran = run_cli("run", source, "--output", output, "--max-attempts", "12")

    assert ran.code == 0, ran.stderr
    report = read_report(output)
    assert_exactly_as_served(report, emulator, ids)
    stats = stat(emulator)
    assert stats["outcomes"]["server_error"] > 0
    assert stats["outcomes"]["dropped"] > 0
    assert report["attempts"].sum() == stats["requests"]
    assert all(stats["ok_by_session"][sid] == 1 for sid in ids)


@pytest.mark.parametrize(
    "faults",
    [
        ["throttle", "server_error", "drop"],
        ["malformed", "truncated", "empty"],
    ],
)
def test_scripted_faults_cost_one_attempt_each(
    emulator: EmulatorThread, tmp_path: Path, faults: list[str]
) -> None:
    sid = emulator.population.ids()[0]
    emulator.script(sid, faults)
    source = tmp_path / "in.csv"
    write_input(source, [sid])
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output)
    assert ran.code == 0, ran.stderr
    report = read_report(output)
    assert report.loc[sid, "attempts"] == len(faults) + 1
    assert_exactly_as_served(report, emulator, [sid])


def test_unresolved_sessions_exit_1_and_a_rerun_resolves_them(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:10])
    stuck = ids[3]
    emulator.script(stuck, ["server_error"] * 3)
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"

    ran = run_cli("run", source, "--output", output, "--max-attempts", "3")

    assert ran.code == 1
    assert "1 sessions unresolved" in ran.stderr
    assert "rerun" in ran.stderr
    report = read_report(output)
    assert report.loc[stuck, "error_code"] == "InternalServerError"
    assert report.loc[stuck, "attempts"] == 3
    assert report["status"].notna().sum() == 9

    assert run_cli("run", source, "--output", output, "--max-attempts", "3").code == 0
    assert_exactly_as_served(read_report(output), emulator, ids)


def test_access_denied_aborts_quickly_keeping_what_was_fetched(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    ids = list(emulator.population.ids()[:2000])
    done_first = ids[:50]
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    # The first 50 go through on a clean run's terms; then the account loses access.
    emulator.script(ids[50], ["denied"])

    ran = run_cli("run", source, "--output", output, "--concurrency", "1")

    assert ran.code == 3
    assert "AccessDeniedException" in ran.stderr
    assert "IAM" in ran.stderr
    assert stat(emulator)["requests"] == 51  # stopped at the first denial, not after 2000
    report = read_report(output)
    assert len(report) == 2000
    assert_exactly_as_served(report, emulator, done_first)
    assert (report.loc[ids[51:], "error_code"] == "NotAttempted").all()


def test_access_denied_with_many_workers_stops_within_a_few_calls(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(deny_all=True)
    ids = list(emulator.population.ids()[:1000])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output, "--concurrency", "8")
    assert ran.code == 3
    assert stat(emulator)["requests"] <= 16
    assert (read_report(output)["error_code"] == "NotAttempted").all()


@pytest.mark.parametrize(
    ("access_key", "code", "hint"),
    [
        ("EXPIRED0000000000000", "ExpiredTokenException", "refresh the credentials"),
        ("INVALID0000000000000", "UnrecognizedClientException", "not recognised"),
    ],
)
def test_credential_errors_exit_3_with_what_to_fix(
    emulator: EmulatorThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    access_key: str,
    code: str,
    hint: str,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:100]))
    ran = run_cli("run", source, "--output", tmp_path / "report.parquet")
    assert ran.code == 3
    assert code in ran.stderr
    assert hint in ran.stderr
    assert stat(emulator)["requests"] <= 16


def test_missing_credentials_exit_3_before_any_call(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:5]))
    ran = run_cli("run", source, "--output", tmp_path / "report.parquet")
    assert ran.code == 3
    assert "no AWS credentials found" in ran.stderr
    assert stat(emulator)["requests"] == 0


def test_expired_sessions_are_definitive(emulator: EmulatorThread, tmp_path: Path) -> None:
    emulator.configure(expire_after=180)
    ids = list(emulator.population.ids()[:100])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    assert run_cli("run", source, "--output", output).code == 0
    report = read_report(output)
    assert_exactly_as_served(report, emulator, ids, expire_after=180)
    assert (report["status"] == "EXPIRED").sum() > 50


def test_save_images_writes_owner_only_files(emulator: EmulatorThread, tmp_path: Path) -> None:
    ids = list(emulator.population.ids()[:40])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    images = tmp_path / "images"
    assert run_cli("run", source, "--output", output, "--save-images", images).code == 0
    report = read_report(output)
    saved = report["reference_image_path"].dropna()
    assert len(saved) > 0
    hashes = report["reference_bytes_sha256"].to_dict()
    for sid, path in saved.items():
        data = Path(path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hashes[sid]
        assert Path(path).stat().st_mode & 0o777 == 0o600
    assert images.stat().st_mode & 0o777 == 0o700
    without = tmp_path / "plain.parquet"
    assert run_cli("run", source, "--output", without).code == 0
    assert read_report(without)["reference_image_path"].isna().all()


def test_save_images_refuses_a_folder_open_to_others(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:5]))
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    ran = run_cli("run", source, "--output", tmp_path / "r.parquet", "--save-images", shared)
    assert ran.code == 2
    assert f"image folder {shared} is open to others (mode 755)" in ran.stderr
    assert emulator.stats()["requests"] == 0


def test_plain_progress_lines_and_no_secrets_in_any_output(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(latency=0.05)
    monkeypatch.setenv("LIVENESS_AUDIT_LOG_INTERVAL", "0.1")
    ids = list(emulator.population.ids()[:40])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output, "--concurrency", "2", "--no-progress")
    assert ran.code == 0
    assert "progress: " in ran.stderr
    assert "req/s" in ran.stderr
    everything = ran.stdout + ran.stderr + output.read_bytes().decode("latin-1")
    assert SECRET_KEY not in everything
    assert ACCESS_KEY not in everything


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "-1"], "invalid setting 'rate' (from --rate)"),
        (["--concurrency", "0"], "invalid setting 'concurrency' (from --concurrency)"),
        (["--column", "id"], "column 'id' not found; columns present: 'session_id'"),
        (["--format", "parquet"], "not a readable Parquet file"),
        (["--endpoint-url", "nonsense"], "endpoint_url must be an http(s) URL"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    emulator: EmulatorThread, tmp_path: Path, args: list[str], message: str
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:3]))
    ran = run_cli("run", source, "--output", tmp_path / "r.parquet", *args)
    assert ran.code == 2
    assert message in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    assert stat(emulator)["requests"] == 0


def test_bad_output_paths_exit_2_before_any_call(emulator: EmulatorThread, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:3]))
    for output, message in [
        (tmp_path, "output is a directory"),
        (tmp_path / "in.csv" / "r.parquet", "in.csv is not a folder"),
        (tmp_path / "r.csv", "must be a .parquet file"),
    ]:
        ran = run_cli("run", source, "--output", output)
        assert ran.code == 2, ran.stderr
        assert message in ran.stderr
    assert stat(emulator)["requests"] == 0


def test_unknown_key_in_config_file(emulator: EmulatorThread, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:3]))
    config = tmp_path / "c.toml"
    config.write_text("rate = 5\nconcurency = 3\n")
    ran = run_cli("run", source, "--output", tmp_path / "r.parquet", "--config", config)
    assert ran.code == 2
    assert "unknown setting 'concurency'" in ran.stderr


def test_endpoint_refusing_connections_leaves_sessions_unresolved(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:5]))
    output = tmp_path / "report.parquet"
    ran = run_cli(
        "run",
        source,
        "--output",
        output,
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--max-attempts",
        "2",
    )
    assert ran.code == 1
    report = read_report(output)
    assert (report["error_code"] == "ConnectionError").all()
    assert (report["attempts"] == 2).all()


def test_thousands_of_sessions_with_quota_both_throttles_and_server_errors(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """The issue's acceptance run: exit 0, everything exactly as served, once."""
    emulator.configure(tps=120, burst=5, throttle_error="mixed", error_rate=0.03)
    ids = list(emulator.population.ids()[:2000])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"

    ran = run_cli("run", source, "--output", output, "--rate", "200", "--concurrency", "16")

    assert ran.code == 0, ran.stderr
    stats = stat(emulator)
    assert stats["outcomes"]["throttled"] > 0
    assert stats["outcomes"]["server_error"] > 0
    report = read_report(output)
    assert len(report) == 2000
    assert_exactly_as_served(report, emulator, ids)
    twice = {sid: report.loc[sid, "attempts"] for sid in ids if stats["ok_by_session"][sid] != 1}
    assert not twice, twice
    assert report["attempts"].sum() == stats["requests"]


def test_without_a_rate_it_finds_the_quota(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIVENESS_AUDIT_RATE")
    monkeypatch.setenv("LIVENESS_AUDIT_RATE_START", "20")
    emulator.configure(tps=100, burst=5)
    ids = list(emulator.population.ids()[:1500])
    source = tmp_path / "in.csv"
    write_input(source, ids)
    output = tmp_path / "report.parquet"
    ran = run_cli("run", source, "--output", output, "--max-attempts", "20")
    assert ran.code == 0, ran.stderr
    stats = stat(emulator)
    assert max(ok for _, ok, _ in stats["timeline"]) > 60  # it went well past its start
    assert stats["outcomes"]["throttled"] > 0  # and found where the quota is
    assert_exactly_as_served(read_report(output), emulator, ids)
