"""``liveness-audit emulator``: serve the local Rekognition endpoint."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from batch.logs import LOGGER
from batch.verdict import EXIT_USAGE

if TYPE_CHECKING:
    from batch.emulator.timing import Timing

log = logging.getLogger(LOGGER)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=0, show_default=True, type=int, help="Port (0: any free).")
@click.option("--tps", type=float, help="Quota: token-bucket refill per second (no quota).")
@click.option("--burst", type=float, help="Quota: bucket capacity [max(1, tps/10)].")
@click.option(
    "--sessions",
    default=1000,
    show_default=True,
    type=int,
    help="Sessions in the synthetic population (each status, errors and images mixed).",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of the population and faults."
)
@click.option("--latency", default=0.0, show_default=True, type=float, help="Seconds per call.")
@click.option(
    "--latency-dist",
    type=click.Choice(["fixed", "uniform", "lognormal"]),  # batch.emulator.timing.DISTS
    help="Timing: each part of the latency fixed, uniform or lognormal [fixed].",
)
@click.option(
    "--latency-jitter", type=float, help="Timing: uniform +- this share; lognormal sigma."
)
@click.option(
    "--throttle-latency",
    help="Timing: seconds a throttle's answer takes (the round trip; the rest of --latency "
    "is processing), or 'success' (as slow as a success).",
)
@click.option(
    "--timing",
    "timing_spec",
    help="Timing in one: latency=0.05,round_trip=0.005,dist=lognormal,jitter=0.5"
    ",throttle=round-trip (batch/emulator/timing.py).",
)
@click.option("--error-rate", default=0.0, show_default=True, type=float, help="Share of 500s.")
@click.option("--drop-rate", default=0.0, show_default=True, type=float, help="Share dropped.")
@click.option(
    "--throttle-error",
    type=click.Choice(["ThrottlingException", "ProvisionedThroughputExceededException", "mixed"]),
    default="ThrottlingException",
    show_default=True,
    help="The error an empty quota bucket answers (mixed: either, at random).",
)
@click.option("--expire-after", type=float, help="Sessions older than this many s: EXPIRED.")
@click.option(
    "--lifetime",
    type=float,
    is_flag=False,
    flag_value=180.0,
    help="Time passes: sessions live this many s, alone 180 (timeless: fixed statuses).",
)
@click.option("--new-per-second", default=0.0, type=float, help="Sessions created per second.")
@click.option(
    "--new-timing",
    default=(5.0, 10.0),
    show_default=True,
    type=(float, float),
    help="New sessions start and finish this many s after creation.",
)
@click.option(
    "--background-tps", default=0.0, type=float, help="Production calls/s on the same quota."
)
@click.option("--regions", help="Comma-separated regions sessions live in (any region).")
@click.option(
    "--write-input",
    type=click.Path(path_type=Path),
    help="Write the population's IDs to this .csv/.parquet file.",
)
@click.option(
    "--reconcile-columns",
    is_flag=True,
    help="--write-input adds customer_ref and app_decision (a few planted disagreements).",
)
@click.option(
    "--url-file", type=click.Path(path_type=Path), help="Write the URL here once listening."
)
def emulator(  # long: one parameter per option, then one settings object built from them
    host: str,
    port: int,
    tps: float | None,
    burst: float | None,
    sessions: int,
    seed: int,
    latency: float,
    latency_dist: str | None,
    latency_jitter: float | None,
    throttle_latency: str | None,
    timing_spec: str | None,
    error_rate: float,
    drop_rate: float,
    throttle_error: str,
    expire_after: float | None,
    lifetime: float | None,
    new_per_second: float,
    new_timing: tuple[float, float],
    background_tps: float,
    regions: str | None,
    write_input: Path | None,
    reconcile_columns: bool,
    url_file: Path | None,
) -> None:
    """Serve a local Rekognition endpoint with a synthetic population, quota and faults."""
    from batch.emulator import EmulatorSettings, serve  # noqa: PLC0415  # only this command

    try:
        settings = EmulatorSettings(
            sessions=sessions,
            seed=seed,
            tps=tps,
            burst=burst,
            latency=latency,
            timing=_timing(latency, latency_dist, latency_jitter, throttle_latency, timing_spec),
            error_rate=error_rate,
            drop_rate=drop_rate,
            throttle_error=throttle_error,  # type: ignore[arg-type]  # click checked the choice
            expire_after=expire_after,
            lifetime=lifetime,
            new_per_second=new_per_second,
            new_start_after=new_timing[0],
            new_finish_after=new_timing[1],
            background_tps=background_tps,
            regions=None if regions is None else tuple(r.strip() for r in regions.split(",")),
        )
    except ValueError as exc:
        click.echo(f"liveness-audit emulator: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        asyncio.run(
            serve(
                settings,
                host=host,
                port=port,
                url_file=url_file,
                write_input_path=write_input,
                reconcile_columns=reconcile_columns,
            )
        )
    except OSError as exc:
        click.echo(f"liveness-audit emulator: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _timing(
    latency: float,
    dist: str | None,
    jitter: float | None,
    throttle: str | None,
    spec: str | None,
) -> Timing | None:
    """The service's timing from the flags (None: the plain fixed ``--latency``)."""
    from batch.emulator.timing import Timing, parse_timing  # noqa: PLC0415  # only this command

    if spec is not None:
        if dist is not None or jitter is not None or throttle is not None:
            raise ValueError("--timing says it all: give it without the other --latency-* flags")
        return parse_timing(spec)
    if dist is None and jitter is None and throttle is None:
        return None
    values: dict[str, object] = {"latency": latency, "dist": dist or "fixed"}
    if jitter is not None:
        values["jitter"] = jitter
    elif dist in ("uniform", "lognormal"):
        values["jitter"] = 0.4 if dist == "uniform" else 0.5
    if throttle == "success":
        values["throttle"] = "success"
    elif throttle is not None:
        try:
            values["round_trip"] = float(throttle)
        except ValueError:
            raise ValueError(
                f"--throttle-latency: seconds or 'success', got {throttle!r}"
            ) from None
    return Timing(**values)  # type: ignore[arg-type]  # checked in Timing.__post_init__
