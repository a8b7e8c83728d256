"""The README's IAM policy runs an S3-bound audit, with IAM enforced (issue 20 item 11).

moto's server evaluates IAM policies once ``/moto-api/reset-auth`` turns enforcement on:
a user holding exactly the README's policy runs an S3-to-S3 audit twice (the second
merges the report the first wrote); without read access to the reports the run stops
with exit 3 and a line naming the call and the key.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from batch.emulator import EmulatorThread, write_input
from tests.helpers import ACCESS_KEY, SECRET_KEY, run_cli
from tests.s3server import MotoServer

README = Path(__file__).parent.parent / "README.md"
OUTPUT = "s3://audit/liveness/date={date}/part.parquet"


def readme_policy() -> dict[str, Any]:
    text = README.read_text()
    block = text[text.index("**IAM.**") :]
    found = re.search(r"```json\n(.*?)```", block, re.DOTALL)
    assert found is not None
    policy: dict[str, Any] = json.loads(found.group(1))
    return policy


def _auth(server: MotoServer, count: str) -> None:
    request = urllib.request.Request(  # noqa: S310  # loopback
        f"{server.url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # not a form: Flask would take the body
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310  # loopback
        pass


@pytest.fixture
def enforced(s3: MotoServer) -> Iterator[MotoServer]:
    """IAM enforced on moto's server for the test, off again after it."""
    try:
        yield s3
    finally:
        _auth(s3, "inf")


def _user(server: MotoServer, policy: dict[str, Any]) -> tuple[str, str]:
    iam = boto3.client(
        "iam",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    iam.create_user(UserName="auditor")
    iam.put_user_policy(
        UserName="auditor", PolicyName="liveness-audit", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName="auditor")["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def _arrange(
    server: MotoServer, emulator: EmulatorThread, tmp_path: Path, policy: dict[str, Any]
) -> tuple[str, str]:
    client = server.client()
    for bucket in ("audit", "liveness-evidence", "vault"):
        client.create_bucket(Bucket=bucket)
    local = tmp_path / "sessions.csv"
    write_input(local, list(emulator.population.ids()[:6]))
    client.put_object(Bucket="audit", Key="in/sessions.csv", Body=local.read_bytes())
    return _user(server, policy)


def test_the_readme_policy_runs_an_s3_audit_twice_with_iam_enforced(
    emulator: EmulatorThread,
    enforced: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, secret = _arrange(enforced, emulator, tmp_path, readme_policy())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    _auth(enforced, "0")
    args = ("run", "s3://audit/in/sessions.csv", "--output", OUTPUT, "--work-dir", tmp_path / "w")

    first = run_cli(*args)
    second = run_cli(*args, "--fresh")  # reads and merges the report the first wrote

    assert first.code == 0, first.stderr
    assert second.code == 0, second.stderr


def test_a_refused_s3_call_names_the_call_the_key_and_the_action(
    emulator: EmulatorThread,
    enforced: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = readme_policy()
    for statement in policy["Statement"]:  # the policy before the fix: reports write-only
        if statement["Resource"] == "arn:aws:s3:::audit/liveness/*":
            statement["Action"] = ["s3:PutObject", "s3:AbortMultipartUpload"]
    key, secret = _arrange(enforced, emulator, tmp_path, policy)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    _auth(enforced, "0")
    args = ("run", "s3://audit/in/sessions.csv", "--output", OUTPUT, "--work-dir", tmp_path / "w")

    ran = run_cli(*args)

    assert ran.code == 3, ran.stderr
    line = next(x for x in ran.stderr.splitlines() if x.startswith("liveness-audit: error"))
    assert "HeadObject" in line
    assert "s3://audit/liveness/date=" in line
    assert "s3:GetObject" in line
    assert emulator.stats()["requests"] == 0  # stopped before asking Rekognition
