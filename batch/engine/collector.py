"""The garbage collector, tuned for the time answers arrive.

Each answer allocates hundreds of short-lived objects (botocore's request and response,
aiohttp's, the row), which reference counting frees; few form cycles. CPython's default
cycle collection still runs a young pass every 700 net allocations, and its older passes
walk the objects of start-up (modules, botocore's models, the plan) that never die: about
10% of a run's CPU, measured (docs/BENCHMARKS.md, "CPU per session"). While a pool runs,
:func:`tuned_collector` freezes what exists (``gc.freeze``: not walked again until the
last pool leaves and unfreezes it) and makes the young pass every 10,000 allocations; the
last pool to leave restores both. Cyclic garbage is still collected, a little later.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["THRESHOLDS", "tuned_collector"]

THRESHOLDS = (10_000, 20, 10)  # young pass every 10,000 allocations (CPython: 700, 10, 10)


class _State:
    """Pools open now (regions nest them) and the thresholds to restore after the last."""

    depth = 0
    saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def tuned_collector() -> Iterator[None]:
    """For the life of the block (and of any block nested in it), the tuned collector."""
    if _State.depth == 0:
        _State.saved = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(*THRESHOLDS)
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if _State.depth == 0:
            gc.set_threshold(*_State.saved)
            gc.unfreeze()
