"""The ``liveness-audit`` command: ``run`` an audit, ``follow`` new sessions as they come,
or serve the local ``emulator``.

Exit codes (a contract, mapped in one place, :func:`batch.verdict.exit_code_for`)::

    0  every session has a definitive answer (a status, or a per-session error)
    1  some sessions are unresolved (retries exhausted, or the run was stopped);
       they are in the report with their last error and a rerun retries them
    2  usage, configuration or input error: nothing was fetched
    3  aborted on an access or credential error; what was fetched is in the report
    4  every session answered, but more than --max-error-rate of them ended in errors
    5  every session answered, but stored audit evidence is missing or changed in S3
       for some (--verify-evidence; error_code EvidenceMissing / EvidenceChanged)
    6  every session answered, but the service contradicts the application's decision
       for some (--fail-on-disagreement; agrees = false in the report)

When several apply the first of 3, 1, 5, 6, 4 wins.

``liveness-audit doctor`` prints each check a run makes first (✓/✗ and the fix).
Each command's ``--help`` ends with its exit codes (:mod:`batch.cli.exits`).

``liveness-audit verify`` exits 0 when a report matches its manifest (and, with
``--evidence``, every S3 image it found is unchanged), 1 when it does not, 2 when it
cannot be read, 3 when S3 refuses access.
"""

from __future__ import annotations

import click

from batch import __version__
from batch.cli.doctor import doctor
from batch.cli.emulator import emulator
from batch.cli.exits import EPILOGS
from batch.cli.follow import follow
from batch.cli.run import run
from batch.cli.schema import schema
from batch.cli.sql import sql
from batch.cli.summarize import summarize
from batch.cli.verify import verify

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="liveness-audit")
def main() -> None:
    """Audit Amazon Rekognition Face Liveness sessions into a Parquet report."""


for _command in (run, follow, verify, summarize, sql, schema, doctor, emulator):
    _command.epilog = EPILOGS[_command.name or ""]
    main.add_command(_command)
