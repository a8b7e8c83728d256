"""Settings: built-in defaults, then a TOML file, then environment, then flags.

The built-in defaults are exactly ``configs/default.toml`` (a test keeps the two equal).
Each later layer overrides the earlier ones key by key:

1. ``--config FILE`` (or ``LIVENESS_AUDIT_CONFIG``): a flat TOML table of the keys below;
2. ``LIVENESS_AUDIT_<KEY>`` environment variables (``LIVENESS_AUDIT_RATE=20``);
3. command-line flags.

Validation is strict (pydantic, unknown keys rejected) and the error names the setting
and where its value came from, so ``rate = -1`` in a file reads as
``invalid setting 'rate' (from configs/nightly.toml): input should be greater than 0,
got -1``.

:class:`Settings` is the one declaration of each setting: its type, bounds, default and
description. A field marked ``Annotated[..., Option()]`` is also a command-line option,
generated from the field by :mod:`batch.cli.options` (flag, help, type).

AWS settings (region, profile, endpoint) are optional here: when unset, the standard AWS
chain decides (``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL_REKOGNITION``, ...).
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from batch.durations import parse_duration
from batch.errors import ConfigError
from batch.store.files import parse_mode
from batch.store.inputs import Dialect
from batch.store.locations import is_s3, parse_s3_url

__all__ = ["ENV_PREFIX", "Option", "Settings", "load_settings", "public_url"]

ENV_PREFIX = "LIVENESS_AUDIT_"
_CONFIG_ENV = ENV_PREFIX + "CONFIG"


@dataclass(frozen=True)
class Option:
    """Marks a setting as a command-line option of ``commands`` (see batch/cli/options.py).

    The flag is the field's name with dashes (``max_attempts``: ``--max-attempts``), its
    help the field's description, its type the annotation's. A bool setting is a flag
    that turns its default around: ``verify_evidence`` (default off) is
    ``--verify-evidence``, ``progress`` (default on) is ``--no-progress``.
    """

    commands: tuple[str, ...] = ("run",)
    metavar: str | None = None


RUN = Option(commands=("run", "follow"))  # options of both commands
RUN_ONLY = Option(commands=("run",))  # what `follow` does not do: reconciliation, quota
FOLLOW = Option(commands=("follow",), metavar="DURATION")
SETTLE = Option(commands=("run", "follow"), metavar="DURATION")
_URLS = ("endpoint_url", "s3_endpoint_url", "quotas_endpoint_url")


class Settings(BaseModel):
    """Every tunable of a run; immutable once built. The one declaration of each setting."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    # input
    column: Annotated[str, RUN] = Field(
        "session_id", min_length=1, description="Column holding the session IDs."
    )
    format: Annotated[Literal["auto", "csv", "parquet"], RUN] = Field(
        "auto", description="Input format (auto: by the file's extension)."
    )
    delimiter: Annotated[str | None, Option(commands=("run", "follow"), metavar="CHAR")] = Field(
        None,
        description="CSV field separator: , ; | or tab [sniffed from the file's start].",
    )
    header: Annotated[bool, RUN] = Field(
        True,
        description="The CSV has no header row: its columns are 1, 2, ... and the IDs "
        "column 1 unless --column says otherwise.",
    )
    keep_columns: Annotated[str | None, Option(metavar="A,B,...")] = Field(
        None,
        min_length=1,
        description="Copy these input columns into the report (comma-separated; they may "
        "hold personal data, so nothing is kept unless named).",
    )
    app_decision_column: Annotated[str | None, Option(metavar="NAME")] = Field(
        None,
        min_length=1,
        description="Input column with the application's decision (pass/fail, true/false, "
        "1/0, live/spoof): reconcile it with the service's answer.",
    )
    app_confidence_column: Annotated[str | None, Option(metavar="NAME")] = Field(
        None,
        min_length=1,
        description="Input column with the confidence the application saw (0-100).",
    )
    region_column: Annotated[str | None, Option(commands=("run",), metavar="NAME")] = Field(
        None,
        min_length=1,
        description="Input column with each session's AWS region: one run across regions, "
        "a client, limiter and quota per region [unset: every session in --region].",
    )
    confidence_tolerance: Annotated[float, RUN_ONLY] = Field(
        1.0,
        ge=0,
        le=100,
        description="Confidence points the application's may differ from the service's.",
    )
    fail_on_disagreement: Annotated[bool, RUN_ONLY] = Field(
        False,
        description="Exit 6 when an application decision disagrees with the service.",
    )
    accept_edited_report: Annotated[bool, RUN] = Field(
        False,
        description="Merge into a report edited since it was written (recorded in it).",
    )
    # pacing and retries
    rate: Annotated[float | None, RUN] = Field(
        None,
        gt=0,
        le=10_000,
        description="Maximum requests per second [unset: probe up to the quota].",
    )
    rate_start: float = Field(
        5.0, gt=0, le=10_000, description="first rate when `rate` is unset, probed upwards"
    )
    concurrency: Annotated[int, RUN] = Field(
        256,
        ge=1,
        le=1024,
        description="Requests in flight at most: a ceiling (and the HTTP pool); below it the "
        "run keeps rate x latency in flight.",
    )
    quota: Annotated[str | None, Option(commands=("run", "follow"), metavar="TPS|auto")] = Field(
        None,
        description="The account's quota for GetFaceLivenessSessionResults in this region, "
        "in requests/s, or auto: read it from Service Quotas [unset: unknown].",
    )
    quota_share: Annotated[float, RUN] = Field(
        1.0, gt=0, le=1, description="Share of --quota this run may use at most."
    )
    quota_hold: float = Field(
        120.0,
        ge=0,
        le=3600,
        description="seconds the rate stays down after a throttle at or below the share",
    )
    max_attempts: Annotated[int, RUN] = Field(10, ge=1, le=100, description="Attempts per session.")
    backoff_initial: float = Field(0.2, ge=0, le=60)
    backoff_max: float = Field(20.0, ge=0, le=600)
    rate_decrease: float = Field(
        0.5, gt=0, lt=1, description="rate factor on a throttle with no quota estimate yet"
    )
    abort_after_failures: int = Field(
        50, ge=1, le=1_000_000, description="failed calls in a row that end the run early"
    )
    drain_timeout: float = Field(
        15.0, gt=0, le=600, description="seconds in-flight calls may finish after a stop"
    )
    # AWS
    region: Annotated[str | None, RUN] = Field(
        None, description="AWS region (default: AWS_REGION / profile)."
    )
    profile: Annotated[str | None, RUN] = Field(
        None, description="AWS profile (default: AWS_PROFILE / default chain)."
    )
    endpoint_url: Annotated[str | None, RUN] = Field(
        None, description="Rekognition endpoint (default: AWS's, or the env)."
    )
    quotas_endpoint_url: str | None = Field(
        None, description="Service Quotas endpoint for quota = auto (default: AWS's, or the env)"
    )
    connect_timeout: float = Field(5.0, gt=0, le=300)
    read_timeout: float = Field(30.0, gt=0, le=900)
    # output
    batch_rows: int = Field(1000, ge=1, le=1_000_000, description="rows per record batch")
    save_images: Annotated[
        str | None, Option(commands=("run", "follow"), metavar="DIR|s3://BUCKET/PREFIX")
    ] = Field(
        None,
        min_length=1,
        description="Write inline image bytes (biometric data) as owner-only files, "
        "or encrypted S3 objects.",
    )
    progress: Annotated[bool, RUN] = Field(True, description="Log lines instead of a progress bar.")
    log_interval: float = Field(10.0, gt=0, le=3600)
    log_format: Annotated[Literal["text", "json"], RUN] = Field(
        "text", description="Log lines as text or JSON."
    )
    timezone: Annotated[str, RUN] = Field(
        "UTC", description="Zone of {date}/{time} in the --output template."
    )
    metrics_file: Annotated[Path | None, RUN] = Field(
        None, description="Write Prometheus textfile metrics here at the end (atomically)."
    )
    max_error_rate: Annotated[float | None, RUN_ONLY] = Field(
        None,
        ge=0,
        le=1,
        description="Exit 4 when more than this share of sessions ended in errors.",
    )
    file_mode: str = Field(
        "0600", description="mode of reports, checkpoints and the run lock (octal)"
    )
    metrics_file_mode: str = Field(
        "0644",
        description="mode of the metrics file (octal): counts, no biometrics, so readable by "
        "the collector's user (node_exporter) by default",
    )
    work_dir: Annotated[Path | None, RUN] = Field(
        None,
        description="Local state of S3-bound runs (report in progress, checkpoint) "
        "[$XDG_STATE_HOME or ~/.local/state, /liveness-audit].",
    )
    # S3 (input, output, evidence, saved images)
    verify_evidence: Annotated[bool, RUN] = Field(
        False,
        description="Check that every image the service stored in S3 is still there (HEAD).",
    )
    s3_endpoint_url: str | None = None
    s3_rate: float = Field(500.0, gt=0, le=10_000, description="S3 requests per second at most")
    s3_concurrency: int = Field(32, ge=1, le=1024, description="S3 connections at most")
    s3_sse: Literal["AES256", "aws:kms"] = "AES256"
    s3_kms_key_id: str | None = Field(None, min_length=1)
    # settling pending sessions (run, follow); durations: 90, 90s, 3m, 1h30m
    settle: Annotated[float, SETTLE] = Field(
        180.0,
        ge=0,
        le=86_400,
        description="Ask CREATED/IN_PROGRESS sessions again for this long (0: off).",
    )
    settle_interval: Annotated[float, SETTLE] = Field(
        10.0, gt=0, le=3600, description="Time between two asks of a pending session."
    )
    # follow: the capture service
    poll_interval: Annotated[float, FOLLOW] = Field(
        5.0, gt=0, le=3600, description="Look for new files in SOURCE at least this often."
    )
    publish_every: Annotated[float, FOLLOW] = Field(
        300.0, gt=0, le=86_400, description="Publish the day's report this often."
    )
    publish_rows: Annotated[int, Option(commands=("follow",))] = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Publish a day sooner, once this many answers came since its last publish.",
    )
    # summaries
    threshold: Annotated[float, Option(commands=("run", "summarize"))] = Field(
        80.0, ge=0, le=100, description="Confidence that passes."
    )

    @field_validator("keep_columns", mode="before")
    @classmethod
    def _check_keep_columns(cls, value: object) -> object:
        if isinstance(value, list | tuple):  # a TOML list
            value = ",".join(map(str, value))
        if isinstance(value, str):
            names = [name.strip() for name in value.split(",")]
            if not all(names):
                raise ValueError("give column names separated by commas, e.g. customer_ref,region")
            return ",".join(dict.fromkeys(names))
        return value

    @property
    def kept_columns(self) -> tuple[str, ...]:
        """The input columns the report carries (``keep_columns``), in order."""
        return tuple(self.keep_columns.split(",")) if self.keep_columns else ()

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Every input column read beside the IDs: kept, the application's, the region."""
        named = (
            *self.kept_columns,
            self.app_decision_column,
            self.app_confidence_column,
            self.region_column,
        )
        return tuple(dict.fromkeys(name for name in named if name))

    @property
    def column_flags(self) -> dict[str, str]:
        """The option that named each input column read beside the IDs (for messages)."""
        named = {
            self.app_decision_column: "--app-decision-column",
            self.app_confidence_column: "--app-confidence-column",
            self.region_column: "--region-column",
        }
        flags = {name: flag for name, flag in named.items() if name}
        flags.update(dict.fromkeys(self.kept_columns, "--keep-columns"))
        return flags

    @field_validator("delimiter", mode="before")
    @classmethod
    def _check_delimiter(cls, value: object) -> object:
        if isinstance(value, str):
            value = {"tab": "\t", "\\t": "\t"}.get(value.strip().lower(), value)
            if not isinstance(value, str) or len(value) != 1 or value in '"\r\n':
                raise ValueError("give one character, e.g. ';' or tab")
        return value

    @property
    def dialect(self) -> Dialect:
        """How a CSV input is written (:class:`~batch.store.inputs.Dialect`)."""
        return Dialect(delimiter=self.delimiter, header=self.header)

    @field_validator("save_images")
    @classmethod
    def _check_images(cls, value: str | None) -> str | None:
        if value is not None and is_s3(value):
            url = parse_s3_url(value, "the S3 location")
            if not url.key.strip("/"):
                raise ValueError("give a prefix after the bucket, e.g. s3://bucket/images")
        elif value is not None:
            value = str(Path(value).expanduser())  # "~/x" from a config file or cron's env
        return value

    @field_validator("work_dir", "metrics_file")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        """``~`` means the home folder wherever a path is set (no shell expands a TOML)."""
        return None if value is None else value.expanduser()

    @field_validator("quota", mode="before")
    @classmethod
    def _check_quota(cls, value: object) -> str | None:
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None if value is None else "auto"
        tps = math.nan
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            with contextlib.suppress(ValueError):
                tps = float(value)
        if not (0 < tps <= 100_000):  # also NaN: not a number
            raise ValueError("give requests per second above 0 (e.g. 50), or auto")
        return repr(tps).removesuffix(".0")

    @property
    def quota_tps(self) -> float | None:
        """The quota given as a number (None: unset or ``auto``)."""
        return None if self.quota in (None, "auto") else float(self.quota)

    @field_validator("settle", "settle_interval", "poll_interval", "publish_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        """A duration as people write it (``3m``, ``90s``, ``1h30m``) or plain seconds."""
        if not isinstance(value, str):
            return value
        try:
            return float(value)
        except ValueError:
            return seconds_of(value, "duration")

    @field_validator("file_mode", "metrics_file_mode")
    @classmethod
    def _check_file_mode(cls, value: str) -> str:
        parse_mode(value)  # raises ValueError with the reason
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> Settings:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA zone") from None
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must not be smaller than backoff_initial")
        for name in _URLS:
            url = getattr(self, name)
            if url is not None:
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ValueError(f"{name} must be an http(s) URL")
        if self.app_confidence_column is not None and self.app_decision_column is None:
            raise ValueError("app_confidence_column needs app_decision_column")
        if self.s3_kms_key_id is not None and self.s3_sse != "aws:kms":
            raise ValueError("s3_kms_key_id needs s3_sse = 'aws:kms'")
        return self

    def public(self) -> dict[str, Any]:
        """The settings as JSON-ready data, safe to print or store (no secrets)."""
        data = self.model_dump(mode="json")
        for name in _URLS:
            url = getattr(self, name)
            if url:
                data[name] = public_url(url)
        return data


def public_url(url: str) -> str:
    """An endpoint URL safe to print or store: no user:password@, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def seconds_of(text: str, name: str) -> float:
    """A duration setting in seconds (:func:`~batch.durations.parse_duration`); ``0`` is 0.

    ValueError (pydantic turns it into the setting's error) when it is not a duration.
    """
    stripped = text.strip().lower()
    if stripped in ("0", "0s", "0m", "0h", "0.0"):
        return 0.0
    try:
        return parse_duration(stripped, name or "duration")
    except ConfigError as exc:
        raise ValueError(f"not a duration ({exc}); use e.g. 10s, 3m or 0") from None


_FIELDS = frozenset(Settings.model_fields)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file is a directory: {path}") from None
    except PermissionError:
        raise ConfigError(f"config file not readable: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _unknown(key: str, where: str) -> ConfigError:
    """The error of an unknown setting, with the nearest known key ("did you mean")."""
    close = difflib.get_close_matches(key, sorted(_FIELDS), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else " (see configs/default.toml)"
    return ConfigError(f"unknown setting '{key}' in {where}{hint}")


def _flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def load_settings(
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the layers and validate; raise :class:`ConfigError` naming the setting."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}

    if config_file is None and env.get(_CONFIG_ENV):
        config_file = Path(env[_CONFIG_ENV])
    if config_file is not None:
        for key, value in _read_toml(config_file).items():
            if key not in _FIELDS:
                raise _unknown(key, str(config_file))
            values[key], origin[key] = value, str(config_file)

    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == _CONFIG_ENV:
            continue
        key = name.removeprefix(ENV_PREFIX).lower()
        if key not in _FIELDS:
            raise _unknown(key, f"environment variable {name}")
        values[key], origin[key] = (None if value == "" else value), name

    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key not in _FIELDS:  # a programming error, not a user one
            raise ConfigError(f"unknown setting '{key}'")
        values[key], origin[key] = value, _flag_name(key)

    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        where = f" (from {origin[key]})" if key in origin else ""
        message = str(err["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if key:
            raise ConfigError(
                f"invalid setting '{key}'{where}: {message}, got {err['input']!r}"
            ) from None
        raise ConfigError(f"invalid settings: {message}") from None
