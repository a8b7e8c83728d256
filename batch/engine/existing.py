"""The report already at ``--output``: read back, to be merged into, never overwritten.

``run`` and ``follow`` both start from what a report holds and merge into it (the answer
ledger, :mod:`batch.store.ledger`; the columnar merge, :mod:`batch.store.merge`); an S3
report is copied next to the local file it will be written to, and its ETag kept so that
the upload can be made conditional on nobody having written it meanwhile.
"""

from __future__ import annotations

from pathlib import Path

from batch.aws.s3 import S3Store
from batch.errors import InputError, NotFoundError, OutputError
from batch.store.locations import Location
from batch.store.merge import Base, read_base
from batch.store.report import read_rows
from batch.store.row import Row

__all__ = ["base_copy", "fetch_base", "read_existing"]


def base_copy(scratch: Path) -> Path:
    """Where the S3 report written to ``scratch`` is copied to be merged into."""
    return scratch.with_name(f".{scratch.name}.existing")


async def fetch_base(
    target: Location, scratch: Path, store: S3Store | None
) -> tuple[Base, str | None]:
    """The report at ``target`` now (its footer read: :class:`Base`) and its ETag (S3).

    An S3 report is copied to :func:`base_copy` of ``scratch`` (the local file it will be
    written to) and left there for the merge; the caller removes it. A file that is not a
    readable report is refused (OutputError).
    """
    if isinstance(target, Path):
        return read_base(target), None
    if store is None:
        raise ValueError(f"the report {target} is in S3 but no S3 store was opened")
    try:
        etag = (await store.head(target)).etag
    except NotFoundError:
        return Base(None), None
    copy = base_copy(scratch)
    try:
        await store.download(target, copy, what="report")
    except InputError:  # deleted between the HEAD and the GET: new again
        return Base(None), None
    try:
        return read_base(copy), etag
    except OutputError as exc:  # name the object, not the copy that is about to go
        copy.unlink(missing_ok=True)
        raise OutputError(str(exc).replace(str(copy), str(target))) from None


async def read_existing(
    target: Location, scratch: Path, store: S3Store | None
) -> tuple[list[Row], str | None]:
    """Every row of the report at ``target`` now, and its ETag (S3); none if it is new.

    For a reader that needs the whole report as rows (``follow`` resuming its day); a
    merge reads only what it needs (:func:`fetch_base`).
    """
    base, etag = await fetch_base(target, scratch, store)
    try:
        return (read_rows(base.path) if base.path is not None else []), etag
    finally:
        if base.path is not None and base.path != target:
            base.path.unlink(missing_ok=True)
