"""The report already at ``--output``: read back, to be merged into, never overwritten.

``run`` and ``follow`` both start from what a report holds and merge into it (the answer
ledger, :mod:`batch.store.ledger`); an S3 report's ETag is kept so that the upload can be
made conditional on nobody having written it meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batch.aws.s3 import S3Store
from batch.errors import InputError, NotFoundError, OutputError
from batch.store.locations import Location
from batch.store.report import read_rows

__all__ = ["read_existing"]


async def read_existing(
    target: Location, scratch: Path, store: S3Store | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of the report at ``target`` now, and its ETag (S3); none if it is new.

    An S3 report is copied next to ``scratch`` (the local file it will be written to) and
    read there. A file that is not a readable report is refused (OutputError).
    """
    if isinstance(target, Path):
        return (read_rows(target) if target.exists() else []), None
    if store is None:
        raise ValueError(f"the report {target} is in S3 but no S3 store was opened")
    try:
        etag = (await store.head(target)).etag
    except NotFoundError:
        return [], None
    copy = scratch.with_name(f".{scratch.name}.existing")
    try:
        await store.download(target, copy, what="report")
    except InputError:  # deleted between the HEAD and the GET: new again
        return [], None
    try:
        return read_rows(copy), etag
    except OutputError as exc:  # name the object, not the copy that is about to go
        raise OutputError(str(exc).replace(str(copy), str(target))) from None
    finally:
        copy.unlink(missing_ok=True)
