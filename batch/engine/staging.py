"""Staging an input: the one way ``run`` and ``follow`` read a file of session IDs.

A local input is read where it is. An S3 input is copied into a folder of the work
directory under a name of its own (the original name last: it tells the format), read
there and removed; an error names the object, never the copy that is about to go.
Reading happens in a thread: ``follow`` reads while its pool is running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from batch.aws.s3 import S3Store, local_copy
from batch.errors import InputError
from batch.store.files import PRIVATE, private_dir
from batch.store.inputs import Plan
from batch.store.locations import Location

__all__ = ["ReadPlan", "stage_plan"]

ReadPlan = Callable[[Path, str | None], Plan]  # (the file to read, where it came from) -> plan


async def stage_plan(
    location: Location,
    read: ReadPlan,
    *,
    store: S3Store | None,
    folder: Path,
    mode: int = PRIVATE,
) -> Plan:
    """The plan of the input at ``location`` (``read`` of a local file; see the module)."""
    if isinstance(location, Path):
        return await asyncio.to_thread(read, location, None)
    copy = await local_copy(store, location, private_dir(folder, mode=mode), "input")
    try:
        return await asyncio.to_thread(read, copy, str(location))
    except InputError as exc:
        raise InputError(str(exc).replace(str(copy), str(location))) from None
    finally:
        await asyncio.to_thread(copy.unlink, True)
