"""Settings layers (file, environment, flags) and the messages for bad ones."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from batch.config import Settings, load_settings
from batch.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_default_toml_equals_the_built_in_defaults() -> None:
    with (ROOT / "configs" / "default.toml").open("rb") as f:
        shipped = tomllib.load(f)
    assert Settings.model_validate(shipped) == Settings()
    # every setting that has a value is spelled out in the file (AWS ones are optional)
    optional = {
        "rate",
        "quota",
        "quotas_endpoint_url",
        "region",
        "profile",
        "endpoint_url",
        "save_images",
        "metrics_file",
        "max_error_rate",
        "work_dir",
        "s3_endpoint_url",
        "s3_kms_key_id",
        "keep_columns",
        "app_decision_column",
        "app_confidence_column",
        "region_column",
        "delimiter",
    }
    assert set(shipped) == set(Settings.model_fields) - optional


def test_layers_file_then_env_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "nightly.toml"
    config.write_text('rate = 20\nconcurrency = 4\ncolumn = "id"\n')
    env = {"LIVENESS_AUDIT_RATE": "30", "LIVENESS_AUDIT_MAX_ATTEMPTS": "3"}
    s = load_settings(config_file=config, env=env, flags={"rate": 40.0, "column": None})
    assert (s.rate, s.concurrency, s.max_attempts, s.column) == (40.0, 4, 3, "id")


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("rate = 7\n")
    assert load_settings(env={"LIVENESS_AUDIT_CONFIG": str(config)}).rate == 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"flags": {"rate": -1.0}},
            "invalid setting 'rate' (from --rate): input should be greater than 0",
        ),
        ({"flags": {"concurrency": 0}}, "invalid setting 'concurrency' (from --concurrency)"),
        ({"env": {"LIVENESS_AUDIT_RATE": "fast"}}, "'rate' (from LIVENESS_AUDIT_RATE)"),
        ({"env": {"LIVENESS_AUDIT_SPEED": "1"}}, "unknown setting 'speed'"),
        ({"flags": {"endpoint_url": "localhost:4566"}}, "endpoint_url must be an http(s) URL"),
    ],
)
def test_invalid_settings_name_the_setting(
    kwargs: dict[str, dict[str, object]], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env=kwargs.get("env", {}), flags=kwargs.get("flags"))  # type: ignore[arg-type]  # test table
    assert message in str(caught.value)


def test_bad_config_files(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("rat = 5\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'rat' in .*unknown\.toml"):
        load_settings(config_file=unknown, env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("rate = = 5\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=broken, env={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(config_file=tmp_path / "nope.toml", env={})
    bad_value = tmp_path / "bad.toml"
    bad_value.write_text("max_attempts = 0\n")
    with pytest.raises(ConfigError, match=r"'max_attempts' \(from .*bad.toml\)"):
        load_settings(config_file=bad_value, env={})


def test_public_settings_hide_endpoint_credentials() -> None:
    s = Settings(endpoint_url="https://user:secret@rekognition.example.com:8443/x")
    assert s.public()["endpoint_url"] == "https://rekognition.example.com:8443/x"
