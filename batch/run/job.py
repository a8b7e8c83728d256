"""One ``liveness-audit run``, inside the event loop: from locations to a run summary.

The CLI parses and checks the command line; :class:`Job` does the rest where the loop
runs: opens the AWS session (and S3 when any location or feature needs it), downloads an
S3 input into the work directory and reads the plan, picks where the report is written
(an S3 report is written and checkpointed in the work directory, then uploaded), and runs
the audit under orderly stops (:func:`run_with_stops`: SIGINT/SIGTERM, the time budget,
then a drain deadline).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import aioboto3

from batch.aws.s3 import S3Store, open_store
from batch.aws.session import open_session, retry_policy
from batch.config import Settings
from batch.durations import format_duration
from batch.errors import ConfigError, InputError
from batch.logs import LOGGER, event
from batch.model import RunSummary
from batch.run.audit import Destination, run_audit
from batch.run.progress import BarDisplay, LogDisplay, Tally
from batch.run.stops import Stop
from batch.store.files import private_dir
from batch.store.inputs import Plan, read_plan
from batch.store.locations import Location, S3Url, is_s3
from batch.store.report import check_output

__all__ = [
    "Job",
    "default_work_dir",
    "local_key",
    "plan_counts",
    "private_dir",
    "run_with_stops",
]

log = logging.getLogger(LOGGER)


def plan_counts(plan: Plan) -> str:
    c = plan.counts()
    return (
        f"{c['rows']} rows: {c['valid']} valid, {c['duplicates']} duplicate, "
        f"{c['invalid']} invalid, {c['blank']} blank"
    )


def default_work_dir() -> Path:
    """``$XDG_STATE_HOME/liveness-audit``, else ``~/.local/state/liveness-audit``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "liveness-audit"


def local_key(key: str) -> Path:
    """An S3 key as a relative path that stays inside the folder it is joined to."""
    parts = [part for part in key.split("/") if part not in ("", ".")]
    if ".." in parts or not parts:
        raise ConfigError(f"invalid --output: the S3 key {key!r} cannot be a local path")
    return Path(*parts)


@dataclass(frozen=True, slots=True)
class Job:
    """One ``run`` command, executed inside the event loop (:meth:`run`)."""

    source: Location
    target: Location
    settings: Settings
    fresh: bool
    budget: float | None

    @property
    def work_dir(self) -> Path:
        return self.settings.work_dir or default_work_dir()

    def needs_s3(self) -> bool:
        settings = self.settings
        return (
            isinstance(self.source, S3Url)
            or isinstance(self.target, S3Url)
            or settings.verify_evidence
            or is_s3(settings.save_images or "")
        )

    async def run(self, *, dry_run: bool = False) -> RunSummary | Plan:
        """The audit's summary; with ``dry_run`` only the plan, nothing sent."""
        stop = Stop()
        if not self.needs_s3():
            plan = await self._plan(None)
            return plan if dry_run else await self._audit(plan, stop, None, None)
        session = await open_session(self.settings)
        policy = retry_policy(self.settings)
        async with open_store(self.settings, session, policy, give_up=lambda: bool(stop)) as store:
            plan = await self._plan(store)
            if dry_run:
                return plan
            if isinstance(self.target, S3Url):
                await store.check_bucket(self.target.bucket)
            return await self._audit(plan, stop, session, store)

    async def _plan(self, store: S3Store | None) -> Plan:
        settings = self.settings
        if isinstance(self.source, Path):
            plan = read_plan(self.source, column=settings.column, fmt=settings.format)
        else:
            assert store is not None
            url = self.source
            # A name of its own per run (the original name last: it tells the format).
            folder = private_dir(self.work_dir / "inputs")
            local = folder / f"{uuid.uuid4().hex[:12]}-{url.name or 'input'}"
            await store.download(url, local)
            try:
                plan = read_plan(
                    local, column=settings.column, fmt=settings.format, origin=str(url)
                )
            except InputError as exc:
                raise InputError(str(exc).replace(str(local), str(url))) from None
            finally:
                local.unlink(missing_ok=True)
        return plan

    def _destination(self) -> Destination:
        if isinstance(self.target, Path):
            return Destination(self.target)
        url = self.target
        local = self.work_dir / "reports" / url.bucket / local_key(url.key)
        private_dir(local.parent)
        check_output(local)
        return Destination(local, url)

    async def _audit(
        self, plan: Plan, stop: Stop, session: aioboto3.Session | None, store: S3Store | None
    ) -> RunSummary:
        destination = self._destination()
        log.info(
            "plan: %s",
            plan_counts(plan),
            extra=event("start", input=plan.origin, output=str(destination), **plan.counts()),
        )
        return await run_with_stops(
            plan,
            self.settings,
            destination,
            stop=stop,
            session=session,
            store=store,
            fresh=self.fresh,
            budget=self.budget,
        )


async def run_with_stops(  # the run's parts, passed down explicitly
    plan: Plan,
    settings: Settings,
    destination: Destination,
    *,
    stop: Stop,
    session: aioboto3.Session | None,
    store: S3Store | None,
    fresh: bool,
    budget: float | None,
) -> RunSummary:
    """Run the audit with orderly stops: a signal or the time budget, then a deadline."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    timers: list[asyncio.TimerHandle] = []

    def begin_stop(reason: str) -> None:
        if stop:
            log.warning(
                "%s again: stopping at once; finished sessions are kept",
                reason,
                extra=event("stop", reason=f"{reason} again"),
            )
            task.cancel()
            return
        stop.request(reason)
        log.warning(
            "%s: stopping: no new sessions, in-flight ones finish (up to %ss); "
            "a second signal stops at once",
            reason,
            f"{settings.drain_timeout:g}",
            extra=event("stop", reason=reason),
        )
        timers.append(loop.call_later(settings.drain_timeout, drain_deadline))

    def drain_deadline() -> None:
        if not stop.fetched:  # calls still in flight: cut them short, keep what is done
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, begin_stop, sig.name)
    if budget is not None:
        used_up = f"time budget of {format_duration(budget)} used up"
        timers.append(loop.call_later(budget, begin_stop, used_up))
    tally = Tally()
    bar = settings.progress and settings.log_format == "text" and sys.stderr.isatty()
    display = BarDisplay(tally) if bar else LogDisplay(tally, interval=settings.log_interval)
    try:
        return await run_audit(
            plan,
            settings,
            destination,
            stop=stop,
            session=session,
            store=store,
            fresh=fresh,
            display=display,
            tally=tally,
        )
    finally:
        for timer in timers:
            timer.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
