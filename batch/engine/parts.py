"""The parts of a command that asks the service, built once and held for its whole life.

``run`` (``batch.run.audit.AuditRun``) and ``follow``
(:class:`~batch.follow.capture.Capture`) each hold one :class:`Parts`: the stop, the one
retry policy, the limiter and its in-flight gate, the tally, the breakers (Rekognition's
and S3's), and, opened inside the running loop on the command's
:class:`~contextlib.AsyncExitStack`, the AWS session, the S3 store and the Rekognition
client(s). What the two commands need of them is written here once:

- :meth:`Parts.open_s3`: the session and the store, when a location or feature needs S3;
- :meth:`Parts.local_steps`: the evidence check and the image save (with its spool);
- :meth:`Parts.fetcher`: the first step of every session, paced and retried (the quota
  looked up first; one client, limiter and gate per region with ``--region-column``);
- :meth:`Parts.pool`: the worker pool (one per region across regions).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path

import aioboto3

from batch.aws.paced import PacedCall
from batch.aws.rekognition import open_client
from batch.aws.s3 import S3Store, open_store
from batch.aws.session import open_session, retry_policy
from batch.config import Settings
from batch.engine.fetch import Fetcher, limiter_for, log_rate_cut, quota_for
from batch.engine.images import FolderSaver, ImageSaver, S3Saver
from batch.engine.local import LocalSteps, spool_for
from batch.engine.pool import Pool, worker_pool
from batch.engine.progress import Tally
from batch.engine.regions import RegionalFetcher, RegionalPool, Routes, regional_pool
from batch.engine.steps import Fetches
from batch.engine.stops import Breaker, Stop
from batch.errors import ConfigError
from batch.model import QuotaUse
from batch.pacing.gate import Gate
from batch.store.locations import is_s3, parse_s3_url

__all__ = ["Parts"]

Handle = Callable[[str], Awaitable[object]]


class Parts:
    """What one command asks the service with (see the module docstring)."""

    def __init__(self, settings: Settings, stack: AsyncExitStack) -> None:
        self.settings = settings
        self.stop = Stop()
        self.policy = retry_policy(settings)  # the one retry policy: Rekognition and S3
        self.limiter = limiter_for(settings)
        self.gate = Gate(self.limiter, ceiling=settings.concurrency)
        self.quota: tuple[float, str] | None = None  # requests/s and where it came from
        self.regional: RegionalFetcher | None = None
        self.tally = Tally(rate_now=self.rate)
        self.breaker = Breaker(settings.abort_after_failures, self.stop)
        self.s3_breaker = Breaker(settings.abort_after_failures, self.stop, name="S3")
        self.session: aioboto3.Session | None = None
        self.store: S3Store | None = None
        self._stack = stack

    def rate(self) -> float:
        """The limiter's current rate (across regions: their sum)."""
        return self.regional.rate() if self.regional is not None else self.limiter.rate

    async def open_s3(self) -> None:
        """The AWS session and the S3 store (once), paced and watched by the S3 breaker."""
        if self.store is not None:
            return
        self.session = self.session or await open_session(self.settings)
        store = open_store(
            self.settings,
            self.session,
            self.policy,
            give_up=lambda: bool(self.stop),
            on_attempt=self.s3_breaker.record,  # an S3 outage ends the command early too
        )
        self.store = await self._stack.enter_async_context(store)

    def s3(self) -> S3Store:
        assert self.store is not None, "S3 is needed but no store was opened"
        return self.store

    def local_steps(self, work_dir: Path, report: str) -> LocalSteps:
        """The evidence store, image saver and spool (for ``report``), checked once."""
        saver = self._image_saver()
        if self.settings.verify_evidence and self.store is None:
            raise ConfigError("invalid setting 'verify_evidence': needs S3 (no store was opened)")
        return LocalSteps(
            evidence_store=self.store if self.settings.verify_evidence else None,
            saver=saver,
            spool=spool_for(work_dir, report) if saver is not None else None,
        )

    def _image_saver(self) -> ImageSaver | None:
        folder = self.settings.save_images
        if folder is None:
            return None
        if is_s3(folder):
            if self.store is None:
                raise ConfigError("invalid setting 'save_images': an s3:// folder needs S3")
            return S3Saver(self.store, parse_s3_url(folder, "save_images"))
        return FolderSaver(Path(folder))

    async def fetcher(self, routes: Routes | None = None) -> Fetches:
        """The first step of every session: the quota looked up (``--quota``), then one
        Rekognition client through the gate and the limiter, or one per region."""
        self.session = self.session or await open_session(self.settings)
        if routes is not None:  # a client, limiter and gate per region, made as needed
            self.regional = RegionalFetcher(
                routes,
                self.settings,
                self.session,
                self._stack,
                self.policy,
                give_up=lambda: bool(self.stop),
                observe=self.observe,
                stopping=self.stop.requested,
            )
            return self.regional
        self.quota = await quota_for(self.settings, self.session)
        if self.quota is not None:  # the cap (quota x share) is the limiter's from the start
            self.limiter = limiter_for(self.settings, self.quota[0])
            self.gate = Gate(self.limiter, ceiling=self.settings.concurrency)
        client = await self._stack.enter_async_context(open_client(self.settings, self.session))
        paced = PacedCall(
            self.gate,
            self.policy,
            give_up=lambda: bool(self.stop),
            stopping=self.stop.requested,
            on_attempt=self.observe,
            on_cut=lambda: log_rate_cut(self.limiter),
        )
        return Fetcher(client, paced)

    def observe(self, error: BaseException | None) -> None:
        """Every Rekognition attempt: counted, and heard by the breaker."""
        self.tally.attempt(error)
        self.breaker.record(error)

    def pool(self, handle: Handle) -> AbstractAsyncContextManager[Pool | RegionalPool]:
        """The worker pool; across regions, one per region (no region holds another's)."""
        concurrency = self.settings.concurrency
        if self.regional is None:
            return worker_pool(handle, concurrency=concurrency, stop=self.stop)
        regions = self.regional.region_of
        return regional_pool(handle, route=regions, concurrency=concurrency, stop=self.stop)

    def quota_use(self, wall: float) -> QuotaUse | None:
        """The share of the quota used over ``wall`` seconds (None: no quota known)."""
        if self.quota is None or self.limiter.cap is None:
            return None
        t = self.tally
        rate = t.requests / wall if wall > 0 else 0.0
        return QuotaUse(
            self.quota[0], self.limiter.cap, self.quota[1], rate, t.throttles, t.requests
        )
