"""The rows a run makes, out of Python as they arrive: an owner-only Arrow spill file.

A run used to hold every answer as a dict of ~4 KB until it wrote the report (123 MB at
30,000 sessions). Now each row (an answer, a row of the existing report or of the
journal that the run merges) goes into a buffer that becomes an Arrow record batch every
``batch_rows`` rows, appended to an Arrow IPC stream beside the report
(``.REPORT.spill``, mode 0600 like every file holding answers). The run keeps only the
row's place and the few fields the ledger's rule reads (:class:`~batch.store.ledger.Kept`);
the report is assembled by reading the spill back (memory-mapped: the pages are the
file's, not the process's) together with the existing report's row groups
(:mod:`batch.store.merge`). The journal stays the crash-safe copy: the spill is scratch,
truncated by the next run and removed when the run ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from batch.errors import StorageError
from batch.store.files import PRIVATE, open_private, storage_error
from batch.store.report import SCHEMA

__all__ = ["Spill", "spill_path"]


def spill_path(report: Path) -> Path:
    return report.with_name(f".{report.name}.spill")


class Spill:
    """Rows appended in order, each at a place (0, 1, ...); read back by place."""

    def __init__(
        self, path: Path, *, batch_rows: int = 4096, mode: int = PRIVATE, schema: pa.Schema = SCHEMA
    ) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._batch_rows = batch_rows
        self._buffer: list[Mapping[str, Any]] = []
        self._failure: StorageError | None = None
        fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, what="spill", mode=mode)
        self._file = os.fdopen(fd, "w+b")
        self._writer = pa.ipc.new_stream(self._file, schema)
        self._table: pa.Table | None = None  # what was read back, until more rows come

    def append(self, row: Mapping[str, Any]) -> int:
        """Spill ``row`` (the report's base columns of it); its place."""
        self._buffer.append(row)
        self._table = None
        place = self.rows
        self.rows += 1
        if len(self._buffer) >= self._batch_rows:
            self._flush()
        return place

    def _flush(self) -> None:
        if self._failure is not None:
            raise self._failure
        if not self._buffer:
            return
        batch = pa.RecordBatch.from_pylist(self._buffer, schema=self.schema)
        try:
            self._writer.write_batch(batch)
            self._file.flush()
        except OSError as exc:
            self._failure = storage_error("spill", self.path, exc)
            raise self._failure from None
        self._buffer.clear()

    def table(self) -> pa.Table:
        """Every row spilled so far, memory-mapped."""
        if self._table is None:
            self._flush()
            with pa.memory_map(str(self.path)) as source:
                self._table = pa.ipc.open_stream(source).read_all()
        return self._table

    def take(self, places: Sequence[int]) -> list[dict[str, Any]]:
        """The rows at ``places``, in that order."""
        if not places:
            return []
        rows: list[dict[str, Any]] = (
            self.table().take(pa.array(places, type=pa.int64())).to_pylist()
        )
        return rows

    def close(self) -> None:
        """Remove the spill (quietly: it runs after the report is written, or an error)."""
        self._table = None
        with contextlib.suppress(OSError, pa.ArrowException):
            self._writer.close()
        with contextlib.suppress(OSError):
            self._file.close()
        self.path.unlink(missing_ok=True)
