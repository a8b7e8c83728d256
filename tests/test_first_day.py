"""The operator's first day, end to end (issue 23): the README's "Install for production"
followed literally, outside the checkout.

The wheel is built by ``scripts/build-wheel.sh`` and installed into a fresh venv in a
temporary folder; everything then runs from that install, against the emulator, in an
environment as bare as cron's (no TTY, a short PATH, no venv beside the script): ``doctor``
and ``run --dry-run --check-access`` with good and with denied credentials, the nightly
script as cron runs it, and ``follow`` started with the shipped unit's ExecStart line and
the shipped ``follow.toml``. Slow (a wheel install, about a minute and a half): marked
``slow``; ``-m "not slow"`` leaves it out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from batch.emulator import EmulatorThread
from tests.following import wait_until
from tests.helpers import ACCESS_KEY, SECRET_KEY, dated, utc_day

# The module fixture (a wheel built and installed, about 90 s quiet) is timed with its first
# test: 300 s, the default, is too close on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
DENIED_KEY = "DENIEDKEY00000000001"  # the emulator answers AccessDeniedException to it


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the built wheel installed (its root)."""
    dist = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-wheel.sh"), str(dist)],
        env={**os.environ, "PYTHON": sys.executable},  # has `build`: no tools venv
        capture_output=True,
        text=True,
        check=True,
    )
    wheel = built.stdout.strip().splitlines()[-1]
    venv = tmp_path_factory.mktemp("opt") / "liveness-audit" / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile", wheel],
        check=True,
        capture_output=True,
    )
    return venv


def bare_env(home: Path, emulator: EmulatorThread, **extra: str) -> dict[str, str]:
    """What cron or systemd gives: a short PATH, no LIVENESS_AUDIT_* from the tests."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_ENDPOINT_URL_REKOGNITION": emulator.url,
        "AWS_ENDPOINT_URL_SERVICE_QUOTAS": emulator.url,
        **extra,
    }


def tool(
    venv: Path, *args: str | Path, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "liveness-audit"), *map(str, args)],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_doctor_and_the_access_check_pass_with_credentials_and_give_the_fix_when_denied(
    installed: Path, emulator: EmulatorThread, tmp_path: Path
) -> None:
    good = bare_env(tmp_path, emulator)
    denied = {**good, "AWS_ACCESS_KEY_ID": DENIED_KEY}
    source = tmp_path / "in.csv"
    source.write_text("session_id\n" + "\n".join(emulator.population.ids()[:5]) + "\n")
    output = tmp_path / "reports" / "date={date}" / "r.parquet"

    ok = tool(installed, "doctor", "-o", output, env=good, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "✓ access to rekognition:GetFaceLivenessSessionResults" in ok.stdout
    assert "all 5 checks passed" in ok.stdout

    refused = tool(installed, "doctor", env=denied, cwd=tmp_path)
    assert refused.returncode == 3
    assert "✗ access to rekognition:GetFaceLivenessSessionResults" in refused.stdout
    assert "fix: the caller may not call rekognition:GetFaceLivenessSessionResults" in (
        refused.stdout
    )

    dry: list[str | Path] = [source, "-o", output, "--dry-run", "--check-access"]
    assert tool(installed, "run", *dry, env=good, cwd=tmp_path).returncode == 0
    no = tool(installed, "run", *dry, env=denied, cwd=tmp_path)
    assert no.returncode == 3
    assert "grant it in the IAM policy" in no.stderr
    assert not (tmp_path / "reports").exists()  # a dry run makes nothing


def test_nightly_runs_as_cron_runs_it_from_the_install(
    installed: Path, emulator: EmulatorThread, tmp_path: Path
) -> None:
    share = installed / "share" / "liveness-audit"
    ids = emulator.population.ids()[:30]
    source = tmp_path / "in.csv"
    source.write_text("session_id\n" + "\n".join(ids) + "\n")
    env = bare_env(
        tmp_path,
        emulator,
        LIVENESS_AUDIT=str(installed / "bin" / "liveness-audit"),
        REPORTS=str(tmp_path / "reports"),
        LOGS=str(tmp_path / "logs"),
        METRICS=str(tmp_path / "textfile" / "liveness_audit.prom"),
        WORK_DIR=str(tmp_path / "work"),
    )

    before = utc_day()
    done = subprocess.run(
        # the timeless emulator's CREATED/IN_PROGRESS sessions never settle: do not wait
        [str(share / "scripts" / "nightly.sh"), str(source), "--settle", "0"],
        env=env,
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    reports, logs = tmp_path / "reports", tmp_path / "logs"
    today = dated(before, lambda day: (reports / f"date={day}" / "liveness.parquet").is_file())
    report = reports / f"date={today}" / "liveness.parquet"
    assert sorted(pd.read_parquet(report)["session_id"]) == sorted(ids)
    logged = dated(before, lambda day: (logs / f"{day}.jsonl").is_file())
    events = [json.loads(x) for x in (logs / f"{logged}.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "end"
    assert events[-1]["exit_code"] == 0
    metrics = tmp_path / "textfile" / "liveness_audit.prom"
    assert metrics.stat().st_mode & 0o777 == 0o644  # node_exporter, another user, reads it


def _unit_command(venv: Path, root: Path) -> list[str]:
    """The shipped unit's ExecStart, with its folders moved under ``root``."""
    unit = (venv / "share" / "liveness-audit" / "liveness-audit-follow.service").read_text()
    line = next(x for x in unit.replace("\\\n", " ").splitlines() if x.startswith("ExecStart="))
    moves = {
        "/opt/liveness-audit/.venv": str(venv),
        "/var/spool/liveness-ids": str(root / "spool"),
        "/data/liveness": str(root / "data"),
        "/var/lib/liveness-audit": str(root / "state"),
        "/var/lib/node_exporter/textfile": str(root / "textfile"),
    }
    for old, new in moves.items():
        line = line.replace(old, new)
    return line.removeprefix("ExecStart=").split()


def test_follow_starts_with_the_units_command_and_the_shipped_settings(
    installed: Path, emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.configure(tps=50.0)  # the account's quota, which Service Quotas reports
    (tmp_path / "spool").mkdir()  # the application's drop folder; reports' folders are made
    (tmp_path / "textfile").mkdir()  # node_exporter's package makes its textfile folder
    env = bare_env(
        tmp_path,
        emulator,
        LIVENESS_AUDIT_CONFIG=str(
            installed / "share" / "liveness-audit" / "configs" / "follow.toml"
        ),
    )
    proc = subprocess.Popen(
        _unit_command(installed, tmp_path),
        env=env,
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ids = list(emulator.population.ids()[:3])
    drop = tmp_path / "spool" / ".ids.csv.tmp"
    drop.write_text("session_id\n" + "\n".join(ids) + "\n")
    drop.rename(tmp_path / "spool" / "ids.csv")
    wait_until(lambda: set(ids) <= set(emulator.stats()["by_session"]), proc, "all asked")
    proc.send_signal(signal.SIGTERM)  # systemctl stop
    _, err = proc.communicate(timeout=90)

    assert proc.returncode == 0, err
    events = [json.loads(line) for line in err.splitlines()]  # JSON logs, from follow.toml
    quota = next(e for e in events if e["event"] == "quota" and "cap" in e)
    assert (quota["quota"], quota["cap"]) == (50, 12.5)  # quota auto, share 0.25
    reports = list((tmp_path / "data" / "follow").glob("date=*/liveness.parquet"))
    (report,) = reports
    assert sorted(pd.read_parquet(report)["session_id"]) == sorted(ids)
    assert (tmp_path / "textfile" / "liveness_audit_follow.prom").stat().st_mode & 0o777 == 0o644
