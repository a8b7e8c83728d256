"""``liveness-audit summarize``: reports into tables, spreadsheets and a page.

The threshold that passes is each report's own (its run's, from the provenance) unless one
is given with ``--threshold`` or ``LIVENESS_AUDIT_THRESHOLD``. Outputs are checked before
any work (a symlink or a folder in the way is refused, exit 2) and written atomically with
the ``file_mode`` of every file holding answers.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from batch.cli.common import fail
from batch.cli.options import settings_options
from batch.config import ENV_PREFIX, Settings, load_settings
from batch.errors import AuditError, ConfigError, OutputError
from batch.reports.export import write_csv, write_xlsx
from batch.reports.html import render_html
from batch.reports.summary import night_counts, night_detail, open_reports
from batch.reports.terminal import render_terminal
from batch.store.files import AtomicFile, check_target, parse_mode


def given_threshold(flags: Mapping[str, Any], settings: Settings) -> float | None:
    """The threshold the user gave (flag or environment), None to use each report's."""
    if flags.get("threshold") is not None or os.environ.get(f"{ENV_PREFIX}THRESHOLD"):
        return settings.threshold
    return None


def _check_outputs(outputs: dict[str, Path | None]) -> None:
    for option, path in outputs.items():
        if path is None:
            continue
        suffix = option.removeprefix("--")
        if path.suffix.lower() != f".{suffix}":
            raise ConfigError(f"invalid {option} {str(path)!r}: the file must end in .{suffix}")
        check_target(path, f"{option} output")


@click.command()
@click.argument("reports", nargs=-1, required=True, metavar="REPORTS...")
@settings_options(Settings, "summarize")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Every session as CSV.")
@click.option("--xlsx", "xlsx_path", type=click.Path(path_type=Path), help="Every session as XLSX.")
@click.option(
    "--html", "html_path", type=click.Path(path_type=Path), help="Self-contained HTML page."
)
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file."
)
def summarize(
    reports: tuple[str, ...],
    csv_path: Path | None,
    xlsx_path: Path | None,
    html_path: Path | None,
    config_file: Path | None,
    flags: dict[str, Any],
) -> None:
    """Summarise REPORTS (files, folders, globs or s3:// prefixes of nightly reports)."""
    try:
        settings = load_settings(config_file=config_file, flags=flags)
        _check_outputs({"--csv": csv_path, "--xlsx": xlsx_path, "--html": html_path})
        mode = parse_mode(settings.file_mode)
        with tempfile.TemporaryDirectory(prefix="liveness-audit-summary-") as folder:
            engine = asyncio.run(
                open_reports(
                    reports, settings, Path(folder), threshold=given_threshold(flags, settings)
                )
            )
            try:
                nights = night_counts(engine)
                detail = night_detail(engine, nights[-1].night)
                render_terminal(engine, nights, detail, Console())
                if csv_path is not None:
                    rows = write_csv(engine, csv_path, mode=mode)
                    click.echo(f"wrote {csv_path} ({rows} sessions)")
                if xlsx_path is not None:
                    rows = write_xlsx(engine, nights, xlsx_path, mode=mode)
                    click.echo(f"wrote {xlsx_path} ({rows} sessions)")
                if html_path is not None:
                    page = render_html(engine, nights, detail).encode("utf-8")
                    target = AtomicFile(html_path, mode=mode, what="HTML page")
                    target.file.write(page)
                    target.commit()
                    click.echo(f"wrote {html_path}")
            finally:
                engine.close()
    except AuditError as error:
        sys.exit(fail(error))
    except OSError as exc:
        sys.exit(fail(OutputError(f"cannot write an output: {exc}")))
