"""Publishing a report to S3: merge, conditional upload, merge again on a lost race.

``run`` and ``follow`` both write their report to a local file merged with the S3 object
as it was when read, then upload it conditionally: ``If-Match`` the ETag read, or
``If-None-Match: *`` when the key was absent. A refused upload
(:class:`~batch.errors.ConflictError`) means another writer got there first: its report
is downloaded, merged into again (the caller's ``merge``, which never loses a row of
either side) and the upload tried again, at most ``tries`` times in a row. This is the
one loop; the callers differ only in how they merge and what they do with an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from batch.aws.s3 import S3Store
from batch.engine.destination import Destination
from batch.engine.existing import base_copy, fetch_base
from batch.errors import ConflictError, PublishError
from batch.logs import LOGGER
from batch.store.locations import S3Url
from batch.store.manifest import Manifest
from batch.store.merge import Base

__all__ = ["Merge", "Merged", "merge_remote", "metadata_of", "publish"]

log = logging.getLogger(LOGGER)

Merge = Callable[[Base], Manifest]  # the report written at the local path, merged into base


@dataclass(frozen=True, slots=True)
class Merged:
    """A report committed at the local path, merged with the S3 object as it was at
    ``etag`` (None: the key was absent): what a conditional upload needs."""

    manifest: Manifest
    etag: str | None


def metadata_of(manifest: Manifest, **extra: str) -> dict[str, str]:
    """The S3 object metadata of a report: its manifest's counts and hashes, and ``extra``."""
    return {
        "rows": str(manifest.rows),
        "rows-sha256": manifest.rows_sha256,
        "input-sha256": manifest.input_sha256,
        **extra,
    }


async def merge_remote(store: S3Store, remote: S3Url, local: Path, merge: Merge) -> Merged:
    """The S3 report now, copied beside ``local``, merged into ``local`` by ``merge``."""
    base, etag = await fetch_base(remote, local, store)
    try:
        return Merged(merge(base), etag)
    finally:
        await asyncio.to_thread(base_copy(local).unlink, True)


async def publish(
    store: S3Store,
    destination: Destination,
    merge: Merge,
    *,
    merged: Merged | None = None,
    tries: int,
    metadata: Mapping[str, str] | None = None,
) -> Manifest:
    """Upload the report at ``destination.local`` to ``destination.remote``; its manifest.

    ``merged``: the report is committed already, merged with the object at that ETag
    (None: it is merged first). A lost race merges the other writer's report and tries
    again; :class:`~batch.errors.PublishError` after ``tries`` lost in a row. Errors of
    S3 are the caller's (the local report stays, complete). Once uploaded, the local
    file is removed: the S3 object is the report now.
    """
    assert destination.remote is not None
    remote, local = destination.remote, destination.local
    for _ in range(tries):
        if merged is None:
            merged = await merge_remote(store, remote, local, merge)
        try:
            await store.upload(
                local,
                remote,
                metadata={**metadata_of(merged.manifest), **(metadata or {})},
                if_match=merged.etag,
                if_none_match=merged.etag is None,
            )
        except ConflictError:
            log.info("another writer changed %s meanwhile: merging its answers", remote)
            merged = None
            continue
        await asyncio.to_thread(local.unlink, True)
        log.info("uploaded the report to %s", remote)
        return merged.manifest
    raise PublishError(
        f"{remote} kept changing: other writers won {tries} conditional uploads in a row"
    )
