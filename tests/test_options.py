"""Command-line options generated from the settings model (batch/cli/options.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from batch.cli import main
from batch.cli.options import generated_options, settings_options
from batch.config import Option, Settings, load_settings

# The command line of `run` as the README and scripts use it: a contract.
RUN_FLAGS = {
    "--rate": "rate",
    "--concurrency": "concurrency",
    "--quota": "quota",
    "--quota-share": "quota_share",
    "--max-attempts": "max_attempts",
    "--endpoint-url": "endpoint_url",
    "--region": "region",
    "--profile": "profile",
    "--save-images": "save_images",
    "--verify-evidence": "verify_evidence",
    "--work-dir": "work_dir",
    "--no-progress": "progress",
    "--log-format": "log_format",
    "--timezone": "timezone",
    "--metrics-file": "metrics_file",
    "--max-error-rate": "max_error_rate",
    "--column": "column",
    "--format": "format",
    "--delimiter": "delimiter",
    "--no-header": "header",
    "--keep-columns": "keep_columns",
    "--app-decision-column": "app_decision_column",
    "--app-confidence-column": "app_confidence_column",
    "--region-column": "region_column",
    "--confidence-tolerance": "confidence_tolerance",
    "--fail-on-disagreement": "fail_on_disagreement",
    "--accept-edited-report": "accept_edited_report",
    "--threshold": "threshold",
    "--settle": "settle",
    "--settle-interval": "settle_interval",
}


def marked(command: str) -> set[str]:
    return {
        name
        for name, info in Settings.model_fields.items()
        if any(isinstance(m, Option) and command in m.commands for m in info.metadata)
    }


def test_every_setting_meant_for_run_is_an_option_listed_in_its_help() -> None:
    generated = {item.flag: item.field for item in generated_options(Settings, "run")}
    assert generated == RUN_FLAGS
    assert set(generated.values()) == marked("run")
    shown = CliRunner().invoke(main, ["run", "--help"], catch_exceptions=False).stdout
    for flag, field in RUN_FLAGS.items():
        assert flag in shown
        description = Settings.model_fields[field].description
        assert description is not None
        assert description.split()[0] in shown


def test_summarize_takes_the_threshold_from_the_model() -> None:
    assert [item.flag for item in generated_options(Settings, "summarize")] == ["--threshold"]
    shown = CliRunner().invoke(main, ["summarize", "--help"], catch_exceptions=False).stdout
    assert "--threshold FLOAT" in shown
    assert "Confidence that passes. [80.0]" in shown


def probe() -> tuple[click.Command, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    @click.command()
    @click.option("--other", default="x")
    @settings_options(Settings, "run")
    def command(other: str, flags: dict[str, Any]) -> None:
        seen.append({"other": other, **flags})

    return command, seen


def test_the_command_receives_only_the_settings_given_as_one_mapping() -> None:
    command, seen = probe()
    args = ["--rate", "20", "--no-progress", "--verify-evidence", "--format", "csv"]
    args += ["--work-dir", "state/w", "--max-attempts", "3", "--other", "y"]
    result = CliRunner().invoke(command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [
        {
            "other": "y",
            "rate": 20.0,
            "progress": False,
            "verify_evidence": True,
            "format": "csv",
            "work_dir": Path("state/w"),
            "max_attempts": 3,
        }
    ]
    flags = {k: v for k, v in seen[0].items() if k != "other"}
    settings = load_settings(env={}, flags=flags)
    assert (settings.rate, settings.progress, settings.verify_evidence) == (20.0, False, True)


def test_no_flags_given_leaves_the_file_and_environment_in_charge() -> None:
    command, seen = probe()
    assert CliRunner().invoke(command, [], catch_exceptions=False).exit_code == 0
    assert seen == [{"other": "x"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "fast"], "'fast' is not a valid float"),
        (["--format", "xml"], "'xml' is not one of 'auto', 'csv', 'parquet'"),
        (["--concurrency", "1.5"], "'1.5' is not a valid integer"),
    ],
)
def test_a_flag_of_the_wrong_type_is_a_usage_error(args: list[str], message: str) -> None:
    command, seen = probe()
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert seen == []
