"""The report already at ``--output``: read back, to be merged into, never overwritten.

``run`` and ``follow`` both start from what a report holds and merge into it (the answer
ledger, :mod:`batch.store.ledger`; the columnar merge, :mod:`batch.store.merge`); an S3
report is copied next to the local file it will be written to, and its ETag kept so that
the upload can be made conditional on nobody having written it meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from batch.aws.s3 import S3Store
from batch.errors import InputError, NotFoundError, OutputError
from batch.model import Status
from batch.store.ledger import Kept, settled
from batch.store.locations import Location
from batch.store.manifest import READ_BATCH
from batch.store.merge import Base, read_base

__all__ = ["base_copy", "fetch_base", "settled_ids"]


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


async def settled_ids(target: Location, scratch: Path, store: S3Store | None) -> set[str]:
    """The sessions the report at ``target`` holds settled (``follow`` resuming its day:
    never asked again); none if it is new. Read a batch at a time, three columns only:
    a day of a million rows is never a million Python rows."""
    base, _ = await fetch_base(target, scratch, store)
    if base.path is None:
        return set()
    try:
        return _settled_in(base.path)
    finally:
        if base.path != target:
            base.path.unlink(missing_ok=True)


def _settled_in(path: Path) -> set[str]:
    found: set[str] = set()
    known: dict[tuple[str | None, str | None], bool] = {}  # (status, error) -> settled
    report = pq.ParquetFile(path)
    columns = ["session_id", "status", "error_code"]
    for batch in report.iter_batches(batch_size=READ_BATCH, columns=columns):
        ids, statuses, errors = (batch.column(name).to_pylist() for name in columns)
        for sid, status, error in zip(ids, statuses, errors, strict=True):
            is_settled = known.get((status, error))
            if is_settled is None:
                answer = Kept(
                    None if status is None else Status(status), error, None, None, 0, 0, 0
                )
                is_settled = known[(status, error)] = settled(answer)
            if is_settled:
                found.add(sid)
    return found
