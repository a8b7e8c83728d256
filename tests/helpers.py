"""Helpers shared by the tests (imported, unlike fixtures)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from batch.aws.s3 import ObjectInfo, S3Store
from batch.cli import main
from batch.emulator import EVIDENCE_BUCKET, EmulatorThread, write_input
from batch.store.locations import S3Url

if TYPE_CHECKING:
    from tests.s3server import MotoServer

ACCESS_KEY = "AKIDMARKERKEY0000001"
SECRET_KEY = "marker-secret-key-do-not-print-0001"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def utc_day() -> str:
    """Today's UTC date, as the tool's ``{date}`` fills it in."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


def dated(before: str, exists: Callable[[str], bool]) -> str:
    """The day (``before``, taken before the run, or today's) whose output ``exists``: a
    run that crosses midnight UTC dates its output by either."""
    days = list(dict.fromkeys([before, utc_day()]))
    found = [day for day in days if exists(day)]
    assert found, f"no output dated {' or '.join(days)}"
    return found[0]


def run_cli(*args: str | Path) -> Ran:
    """Run ``liveness-audit ARGS`` in-process, the way the console script does."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def read_report(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).set_index("session_id")


def same(got: Any, want: Any) -> bool:
    """Equal, or both missing (pandas shows a null string as NaN)."""
    if want is None:
        return bool(pd.isna(got))
    return bool(got == want)


def image_matches(row: dict[str, Any] | pd.Series, raw: dict[str, Any] | None, prefix: str) -> None:
    """One image of the report against the emulator's JSON for it."""
    if raw is None:
        assert pd.isna(row[f"{prefix}bytes_size"])
        assert pd.isna(row[f"{prefix}s3_bucket"])
        return
    box = raw["BoundingBox"]
    for side in ("Left", "Top", "Width", "Height"):
        assert row[f"{prefix}bbox_{side.lower()}"] == box[side]
    if "Bytes" in raw:
        data = base64.b64decode(raw["Bytes"])
        assert row[f"{prefix}bytes_size"] == len(data)
        assert row[f"{prefix}bytes_sha256"] == hashlib.sha256(data).hexdigest()
        assert same(row[f"{prefix}s3_bucket"], None)
    else:
        s3 = raw["S3Object"]
        assert row[f"{prefix}s3_bucket"] == s3["Bucket"]
        assert row[f"{prefix}s3_name"] == s3["Name"]
        assert same(row[f"{prefix}s3_version"], s3.get("Version"))
        assert pd.isna(row[f"{prefix}bytes_size"])


def assert_exactly_as_served(
    report: pd.DataFrame, emulator: EmulatorThread, ids: list[str], **kw: Any
) -> None:
    """Every session's status, confidence and images equal what the service returned."""
    for sid in ids:
        expected = emulator.population.response(sid, **kw)
        assert expected is not None
        row = report.loc[sid]
        assert row["status"] == expected["Status"], sid
        assert pd.isna(row["error_code"])
        if "Confidence" in expected:
            assert row["confidence"] == expected["Confidence"]
        else:
            assert math.isnan(row["confidence"])
        challenge = expected.get("Challenge") or {}
        assert same(row["challenge_type"], challenge.get("Type")), sid
        assert same(row["challenge_version"], challenge.get("Version")), sid
        image_matches(row, expected.get("ReferenceImage"), "reference_")
        audits = expected.get("AuditImages", [])
        assert row["audit_image_count"] == len(audits)
        for got, want in zip(row["audit_images"], audits, strict=True):
            image_matches(got, want, "")


DEADLINE = 60.0


def start_cli(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "batch", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen[str]) -> int:
    """Block until the journal holds ``count`` rows (the observable we synchronise on)."""
    limit = time.monotonic() + DEADLINE
    while time.monotonic() < limit:
        if proc.poll() is not None:
            pytest.fail(f"the run ended early: {proc.communicate()}")
        if path.exists():
            rows = path.read_bytes().count(b"\n") - 1
            if rows >= count:
                return rows
        time.sleep(0.01)
    pytest.fail(f"{path} never reached {count} rows")


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path: Path, *args: str) -> str:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium is not installed: ./scripts/test.sh installs Debian's package")
    done = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def stored(emulator: EmulatorThread, session_id: str) -> list[dict[str, str]]:
    """The S3 objects the service names for a session (reference first)."""
    body = emulator.population.response(session_id) or {}
    images = [body.get("ReferenceImage"), *body.get("AuditImages", [])]
    return [image["S3Object"] for image in images if image and "S3Object" in image]


class Evidence:
    """The evidence bucket, filled with every image the service says it stored."""

    def __init__(
        self, emulator: EmulatorThread, s3: MotoServer, ids: list[str], *, versioned: bool = True
    ) -> None:
        self.client = s3.client()
        self.client.create_bucket(Bucket=EVIDENCE_BUCKET)
        if versioned:
            self.client.put_bucket_versioning(
                Bucket=EVIDENCE_BUCKET, VersioningConfiguration={"Status": "Enabled"}
            )
        self.bodies: dict[str, bytes] = {}
        versions: dict[str, str] = {}
        for sid in ids:
            for obj in stored(emulator, sid):
                body = hashlib.sha256(obj["Name"].encode()).digest() * 20
                put = self.client.put_object(Bucket=EVIDENCE_BUCKET, Key=obj["Name"], Body=body)
                self.bodies[obj["Name"]] = body
                if "Version" in obj and "VersionId" in put:  # written in a versioned bucket
                    versions[obj["Name"]] = put["VersionId"]
        emulator.configure(evidence_versions=versions)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=EVIDENCE_BUCKET, Key=key)

    def overwrite(self, key: str) -> None:
        self.client.put_object(Bucket=EVIDENCE_BUCKET, Key=key, Body=b"replaced")


# --- failures seen from outside: a small file system, the one error line ----------------


@contextlib.contextmanager
def tmpfs(disk: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``disk`` (made) with ``options`` (``size=2m``...), owner-only;
    the test is skipped where it may not mount (needs root)."""
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"{options},mode=0700", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)  # lazy: even if a file is open


def the_error_line(stderr: str) -> str:
    """The one ``liveness-audit: error`` line of ``stderr``; no traceback anywhere."""
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("liveness-audit: error")]
    assert len(errors) == 1, stderr
    return errors[0]


# --- another writer racing ours on one S3 key --------------------------------------------


class Raced:
    """The real S3 store, except that another writer (``rival``, told which upload of
    ours it precedes: 1, 2...) writes the key just before each of our first ``wins``
    uploads, as another host would."""

    def __init__(
        self, store: S3Store, rival: Callable[[int], Awaitable[object]], wins: int = 1
    ) -> None:
        self.store, self.rival, self.wins = store, rival, wins
        self.uploads = 0

    async def head(self, url: S3Url) -> ObjectInfo:
        return await self.store.head(url)

    async def download(self, url: S3Url, target: Path, *, what: str = "input") -> None:
        await self.store.download(url, target, what=what)

    async def upload(self, path: Path, url: S3Url, **kw: Any) -> str | None:
        self.uploads += 1
        if self.uploads <= self.wins:
            await self.rival(self.uploads)
        return await self.store.upload(path, url, **kw)


def edit_one_confidence(report: Path) -> str:
    """Change one result's confidence by hand, footer kept (as a spreadsheet round trip
    that keeps the metadata would); the session edited."""
    table = pq.read_table(report)
    place = pc.index(pc.is_valid(table["confidence"]), True).as_py()
    values = table["confidence"].to_pylist()
    values[place] = 99.99 if values[place] != 99.99 else 1.0
    column = table.schema.get_field_index("confidence")
    edited = table.set_column(column, "confidence", pa.array(values, pa.float64()))
    pq.write_table(edited.replace_schema_metadata(pq.read_metadata(report).metadata), report)
    return str(table["session_id"][place])


def nightly_reports(
    emulator: EmulatorThread, folder: Path, nights: dict[str, int], *options: str
) -> dict[str, pd.DataFrame]:
    """Reports of ``nights`` (date -> sessions, the first of the population), reconciled
    inputs run with ``options`` into ``folder/reports/date=DATE/part.parquet``, as
    ``run --output .../date={date}/`` writes them; each night's rows."""
    frames = {}
    for night, count in nights.items():
        source = folder / f"{night}.csv"
        write_input(
            source, list(emulator.population.ids()[:count]), reconcile_with=emulator.population
        )
        report = folder / "reports" / f"date={night}" / "part.parquet"
        report.parent.mkdir(parents=True)
        assert run_cli("run", source, "-o", report, *options).code == 0
        frames[night] = pd.read_parquet(report)
    return frames
