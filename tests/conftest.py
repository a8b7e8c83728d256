"""Shared fixtures: a clean AWS environment and one emulator for the whole session.

Every test runs with the real AWS variables removed and marker credentials set, and with
the instance-metadata lookup disabled, so nothing can leave loopback. The emulator is a
real HTTP server (``EmulatorThread``) started once; each test that uses it gets it reset
(settings, scripted faults, stats) and ``AWS_ENDPOINT_URL_REKOGNITION`` pointing at it.
S3 is moto's server in a child process, also started once; the ``s3`` fixture empties it
and points ``AWS_ENDPOINT_URL_S3`` at it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from batch.emulator import EmulatorSettings, EmulatorThread
from tests.helpers import ACCESS_KEY, SECRET_KEY
from tests.s3server import MotoServer

# Properties are checked for what they assert, not for speed: a loaded machine that
# pauses the process for a quarter second must not fail one on Hypothesis's deadline.
settings.register_profile("liveness-audit", deadline=None)
settings.load_profile("liveness-audit")

# Fast settings for tests: generous rate, backoff switched off (no waiting between
# attempts: retries still pass the limiter), small report batches to exercise batching,
# no settling.
FAST = {
    "LIVENESS_AUDIT_RATE": "400",
    "LIVENESS_AUDIT_CONCURRENCY": "8",
    "LIVENESS_AUDIT_BACKOFF_INITIAL": "0",
    "LIVENESS_AUDIT_BATCH_ROWS": "7",
    "LIVENESS_AUDIT_READ_TIMEOUT": "5",
    # The timeless emulator's CREATED/IN_PROGRESS sessions never settle: tests of
    # settling turn it on with --settle.
    "LIVENESS_AUDIT_SETTLE": "0",
}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "LIVENESS_AUDIT_")):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    # the default work directory of S3-bound runs: never the real ~/.local/state
    monkeypatch.setenv("XDG_STATE_HOME", str(empty / "state"))


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorThread]:
    with EmulatorThread(EmulatorSettings(sessions=3000, seed=7)) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def s3(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """An empty S3 on loopback; the tool finds it through ``AWS_ENDPOINT_URL_S3``."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server.url)
    return moto_server


@pytest.fixture
def emulator(emulator_server: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> EmulatorThread:
    emulator_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", emulator_server.url)
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    return emulator_server


# --- follow's tests: a folder to drop ID files into, sessions that live ----------------


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def living(emulator: EmulatorThread) -> EmulatorThread:
    """Sessions that live 60 s (each test says when they start and finish)."""
    emulator.configure(lifetime=60.0)
    return emulator


@pytest.fixture
def buckets(s3: MotoServer) -> Any:
    """Buckets ``inbox`` (ID files) and ``audits`` (reports) on moto; boto3's S3 client."""
    client = s3.client()
    for bucket in ("inbox", "audits"):
        client.create_bucket(Bucket=bucket)
    return client


# The quick loop (`pytest -m "not e2e"`): a test is end-to-end when it talks to a server
# (the emulator, moto, a browser) or starts processes; those modules and fixtures mark it.
E2E_FIXTURES = frozenset({"emulator", "emulator_server", "s3", "moto_server", "page", "browser"})
E2E_MODULES = frozenset(
    {
        "test_cron",
        "test_disk_full",
        "test_emulator_time",
        "test_emulator",
        "test_run_memory",
        "test_two_writers",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        name = module.__name__.rpartition(".")[2] if module is not None else ""
        slow = item.get_closest_marker("slow") is not None
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())) or name in E2E_MODULES or slow:
            item.add_marker(pytest.mark.e2e)
