"""Helpers shared by the tests (imported, unlike fixtures)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from batch.cli import main

ACCESS_KEY = "AKIDMARKERKEY0000001"
SECRET_KEY = "marker-secret-key-do-not-print-0001"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path) -> Ran:
    """Run ``liveness-audit ARGS`` in-process, the way the console script does."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)
