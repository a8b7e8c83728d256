"""A job cron can own: JSON logs, dated output paths, metrics, an error-rate alarm."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from batch.cli.common import render_output
from batch.emulator import EmulatorThread, write_input
from batch.errors import ConfigError
from tests.helpers import dated, run_cli, utc_day

UNKNOWN = "00000000-0000-4000-8000-00000000000{}"


def test_json_logs_one_event_per_line(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(latency=0.02, tps=60, burst=2)
    monkeypatch.setenv("LIVENESS_AUDIT_LOG_INTERVAL", "0.2")
    source, ids = tmp_path / "in.csv", list(emulator.population.ids()[:150])
    write_input(source, ids)
    emulator.script(ids[0], ["throttle"])  # one throttle for certain (and the cut it makes)
    ran = run_cli(
        "run",
        source,
        "--output",
        tmp_path / "r.parquet",
        "--log-format",
        "json",
        "--rate",
        "200",
        "--max-attempts",
        "30",
    )
    assert ran.code == 0, ran.stderr
    records = [json.loads(line) for line in ran.stderr.splitlines()]  # every line is JSON
    for record in records:
        assert {"ts", "level", "event", "message"} <= set(record)
        datetime.fromisoformat(record["ts"])
    events = [r["event"] for r in records]
    assert events[0] == "start"
    assert events[-1] == "end"
    assert "progress" in events
    assert "rate" in events
    start, end = records[0], records[-1]
    assert start["valid"] == 150
    assert start["output"].endswith("r.parquet")
    progress = next(r for r in records if r["event"] == "progress")
    assert {"done", "total", "requests", "throttled", "limiter_rate"} <= set(progress)
    rate = next(r for r in records if r["event"] == "rate")
    assert 0 < rate["rate"] < 200
    assert end["exit_code"] == 0
    assert sum(end["by_status"].values()) == 150
    assert end["throttled"] > 0
    assert end["requests"] >= 150


def test_output_templates_fill_the_date_in_a_zone() -> None:
    moment = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)
    path = render_output("r/{date}/x-{time}.parquet", timezone="UTC", now=moment)
    assert path == "r/2026-11-23/x-223000.parquet"
    tokyo = render_output("s3://b/date={date}/part.parquet", timezone="Asia/Tokyo", now=moment)
    assert tokyo == "s3://b/date=2026-11-24/part.parquet"
    with pytest.raises(ConfigError, match=r"unknown placeholder \{day\}"):
        render_output("r/{day}.parquet", timezone="UTC", now=moment)


def test_a_templated_output_creates_its_dated_folder(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:5]))
    before = utc_day()
    ran = run_cli("run", source, "--output", f"{tmp_path}/reports/{{date}}/liveness.parquet")
    assert ran.code == 0, ran.stderr
    dated(before, lambda day: (tmp_path / "reports" / day / "liveness.parquet").is_file())
    bad = run_cli("run", source, "--output", f"{tmp_path}/{{nope}}.parquet")
    assert bad.code == 2
    assert "unknown placeholder {nope}" in bad.stderr
    zone = run_cli("run", source, "--output", tmp_path / "r.parquet", "--timezone", "Mars/Base")
    assert zone.code == 2
    assert "timezone 'Mars/Base' is not a known IANA zone" in zone.stderr


def metrics(path: Path) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_file_for_the_textfile_collector(emulator: EmulatorThread, tmp_path: Path) -> None:
    ids = list(emulator.population.ids()[:20])
    source = tmp_path / "in.csv"
    write_input(source, [*ids, UNKNOWN.format(1)])
    prom = tmp_path / "liveness.prom"
    ran = run_cli("run", source, "--output", tmp_path / "r.parquet", "--metrics-file", prom)
    assert ran.code == 0
    first = metrics(prom)
    assert first["liveness_audit_exit_code"] == 0
    assert (
        first['liveness_audit_sessions{outcome="error",error_code="SessionNotFoundException"}'] == 1
    )
    statuses = sum(v for k, v in first.items() if 'outcome="status"' in k)
    assert statuses == 20
    assert first["liveness_audit_requests"] == 21
    assert first["liveness_audit_duration_seconds"] > 0
    success = first["liveness_audit_last_success_timestamp_seconds"]
    assert re.search(r"^# TYPE liveness_audit_exit_code gauge$", prom.read_text(), re.MULTILINE)

    emulator.script(ids[0], ["server_error"] * 2)
    failed = run_cli(
        "run",
        source,
        "--output",
        tmp_path / "r2.parquet",
        "--metrics-file",
        prom,
        "--max-attempts",
        "2",
    )
    assert failed.code == 1
    second = metrics(prom)
    assert second["liveness_audit_exit_code"] == 1
    assert second["liveness_audit_last_success_timestamp_seconds"] == success  # carried over
    assert not list(tmp_path.glob(".liveness.prom*"))  # no temporary file left


def test_usage_errors_still_write_metrics(emulator: EmulatorThread, tmp_path: Path) -> None:
    prom = tmp_path / "m.prom"
    ran = run_cli(
        "run", tmp_path / "nope.csv", "--output", tmp_path / "r.parquet", "--metrics-file", prom
    )
    assert ran.code == 2
    assert metrics(prom)["liveness_audit_exit_code"] == 2


def test_max_error_rate_turns_errors_into_exit_4(emulator: EmulatorThread, tmp_path: Path) -> None:
    ids = list(emulator.population.ids()[:8])
    source = tmp_path / "in.csv"
    write_input(source, [*ids, UNKNOWN.format(1), UNKNOWN.format(2)])
    output = tmp_path / "r.parquet"
    assert run_cli("run", source, "--output", output, "--max-error-rate", "0.25").code == 0
    ran = run_cli("run", source, "--output", output, "--max-error-rate", "0.1")
    assert ran.code == 4
    assert "2 of 10 sessions ended in errors, more than --max-error-rate 0.1" in ran.stderr
    bad = run_cli("run", source, "--output", output, "--max-error-rate", "1.5")
    assert bad.code == 2
    assert "max_error_rate" in bad.stderr


@pytest.mark.parametrize("where", ["local", "s3"])
def test_nightly_script_runs_the_cron_job(
    emulator: EmulatorThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    where: str,
) -> None:
    import subprocess  # noqa: PLC0415

    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:30]))
    before = utc_day()
    if where == "s3":
        client = request.getfixturevalue("s3").client()
        client.create_bucket(Bucket="nightly-audits")
        client.put_object(Bucket="nightly-audits", Key="in/today.csv", Body=source.read_bytes())
        args = [str(root / "scripts" / "nightly.sh"), "s3://nightly-audits/in/today.csv"]
        monkeypatch.setenv("REPORTS", "s3://nightly-audits/liveness")
    else:
        args = [str(root / "scripts" / "nightly.sh"), str(source)]
        monkeypatch.setenv("REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("METRICS", str(tmp_path / "prom" / "liveness.prom"))
    monkeypatch.setenv("LIVENESS_AUDIT_RATE", "300")
    monkeypatch.setenv("LIVENESS_AUDIT", str(Path(sys.executable).parent / "liveness-audit"))
    done = subprocess.run(args, check=False, timeout=120)
    assert done.returncode == 0
    if where == "s3":
        listed = client.list_objects_v2(Bucket="nightly-audits", Prefix="liveness/")
        keys = {item["Key"] for item in listed.get("Contents", [])}
        today = dated(before, lambda day: f"liveness/date={day}/liveness.parquet" in keys)
        key = f"liveness/date={today}/liveness.parquet"
        body = client.get_object(Bucket="nightly-audits", Key=key)["Body"].read()
        assert len(pd.read_parquet(io.BytesIO(body))) == 30
    else:
        reports = tmp_path / "reports"
        today = dated(before, lambda day: (reports / f"date={day}" / "liveness.parquet").is_file())
        assert len(pd.read_parquet(reports / f"date={today}" / "liveness.parquet")) == 30
    logs = tmp_path / "logs"
    logged = dated(before, lambda day: (logs / f"{day}.jsonl").is_file())
    log_lines = (logs / f"{logged}.jsonl").read_text().splitlines()
    assert json.loads(log_lines[-1])["event"] == "end"
    assert metrics(tmp_path / "prom" / "liveness.prom")["liveness_audit_exit_code"] == 0
