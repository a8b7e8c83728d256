"""How a process that streams big reports allocates: so that its peak RSS does not grow
with the report (issue 19: a 100,000-row report may cost only a few MB over an empty one).

Reading a report decodes and frees buffers of many sizes a batch at a time; what stays
resident afterwards depends on the allocator, not on what is in use (about 7 MB live at
once while a 100,000-row report streamed, 25 to 30 MB more in the RSS before this):

- Arrow's default allocator, mimalloc, kept ~20 MB resident for 3 MB in use: the pool
  the code passes is the system's (:func:`lean_reads`), and so is Arrow's process default
  that the Parquet reader takes its page buffers from (``batch/__init__.py``);
- glibc raises the size from which a block gets its own mapping each time such a block is
  freed (up to 32 MB), after which the buffers come from the heap and stay there:
  :func:`lean_reads` fixes it at 64 KiB;
- :func:`give_back`, after each batch, returns the heap's free pages (``malloc_trim``).
"""

from __future__ import annotations

import contextlib
import ctypes
import platform

import pyarrow as pa

__all__ = ["give_back", "lean_reads"]

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
# Blocks from this size get their own mapping, returned when freed. 16 KiB cut another
# ~2 MB at 100,000 rows but cost ~4 s of CPU per 1,000,000 rows (mappings, page faults).
_MAPPED_FROM = 64 * 1024


def lean_reads() -> None:
    """Arrow's pool for a process that streams big reports: the system's, with glibc's
    mapping threshold fixed.

    Streaming a 1,000,000-row report raised the peak RSS by 116 MB with Arrow's default
    (mimalloc, decoding on its thread pool, column chunks pre-buffered), by 36 MB with the
    system allocator, one thread and no pre-buffering (``merge.open_report``). Called
    once by ``run`` and ``follow`` (the allocator is process-wide).
    """
    pa.set_memory_pool(pa.system_memory_pool())
    if platform.libc_ver()[0] == "glibc":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM)


def give_back() -> None:
    """Return to the system the memory the last batch of a stream freed.

    Arrow's system pool trims the heap (``malloc_trim``: microseconds a batch); a no-op
    under other allocators.
    """
    pa.default_memory_pool().release_unused()
