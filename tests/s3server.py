"""A real S3-compatible server for the tests: moto's server mode in a child process.

Nothing is patched: the tool's aioboto3 client (and pyarrow's S3 filesystem in the tests)
talk HTTP over loopback to ``python -m moto.server``, started once per test session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

import boto3

from tests.helpers import ACCESS_KEY, SECRET_KEY

_READY_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MotoServer:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        """Poll until the server answers (importing moto takes a few seconds)."""
        assert self._process is not None
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):  # noqa: S310  # loopback
                    return
            except OSError:
                time.sleep(0.05)  # polling a child process for readiness, not a test wait
        raise RuntimeError(f"moto server not ready after {_READY_TIMEOUT:g}s")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def reset(self) -> None:
        """Forget every bucket and object."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310  # loopback
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310  # loopback
            pass

    def client(self, service: str = "s3") -> Any:
        """A plain boto3 client for arranging and inspecting the tests' S3 (or SQS) state."""
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
