"""``~`` in a path setting is the home folder (issue 20 item 13).

No shell expands a TOML file or a cron line's environment: the tool does, so cron and an
interactive rerun share one state folder, and no folder literally named ``~`` appears.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.emulator import EmulatorThread, write_input
from tests.helpers import run_cli
from tests.s3server import MotoServer


def test_a_tilde_in_work_dir_and_metrics_file_means_the_home_folder(
    emulator: EmulatorThread, s3: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    s3.client().create_bucket(Bucket="reports")
    source = tmp_path / "in.csv"
    write_input(source, list(emulator.population.ids()[:4]))
    config = tmp_path / "la.toml"
    config.write_text('work_dir = "~/la-state"\nmetrics_file = "~/audit.prom"\n')

    ran = run_cli(
        "run", source, "--output", "s3://reports/r.parquet", "--config", config, "--no-progress"
    )

    assert ran.code == 0, ran.stderr
    assert (home / "la-state").is_dir()
    assert (home / "audit.prom").is_file()
    assert list(cwd.iterdir()) == []  # no folder named "~" where cron happened to run
