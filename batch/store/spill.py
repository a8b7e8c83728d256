"""The rows a run makes, out of Python as they arrive: an owner-only Arrow spill file.

A run used to hold every answer as a dict of ~4 KB until it wrote the report (123 MB at
30,000 sessions). Now each row (an answer, a row of the existing report or of the
journal that the run merges) goes into a buffer that becomes an Arrow record batch every
``batch_rows`` rows, appended to an Arrow IPC stream beside the report
(``.REPORT.spill``, mode 0600 like every file holding answers). The run keeps only the
row's place and the few fields the ledger's rule reads (:class:`~batch.store.ledger.Kept`);
the report is assembled by reading the spill back a batch at a time (each batch's offset
in the file is kept; a memory-mapped whole would count in the run's RSS: 100,000 rows
took 144 MB) together with the existing report's row groups (:mod:`batch.store.merge`).
The journal stays the crash-safe copy: the spill is scratch, truncated by the next run
and removed when the run ends.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from batch.errors import StorageError
from batch.store.files import PRIVATE, open_private, storage_error
from batch.store.ledger import Details
from batch.store.row import SCHEMA, Row

__all__ = ["Spill", "spill_path"]


_DETAILS = ("fetched_at", "checked_at", "checks", "attempts")


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
        self._buffer: list[Mapping[str, object]] = []  # the rows' base columns
        self._failure: StorageError | None = None
        fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, what="spill", mode=mode)
        self._file = os.fdopen(fd, "w+b")
        self._writer = pa.ipc.new_stream(self._file, schema)
        self._file.flush()
        self._offsets: list[int] = []  # where each batch's message starts in the file
        self._starts: list[int] = []  # the place of each batch's first row
        self._cache: tuple[int, pa.RecordBatch] | None = None  # the batch read last

    def append(self, row: Row, columns: Mapping[str, object] | None = None) -> int:
        """Spill ``row`` (the report's base columns of it: ``columns`` when the caller has
        them already, as the journal's line takes them too); its place."""
        self._buffer.append(row.flat(extras=False) if columns is None else columns)
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
            offset = self._file.tell()
            self._writer.write_batch(batch)
            self._file.flush()
        except OSError as exc:
            self._failure = storage_error("spill", self.path, exc)
            raise self._failure from None
        self._offsets.append(offset)
        self._starts.append(self.rows - len(self._buffer))
        self._buffer.clear()

    def _batch(self, index: int) -> pa.RecordBatch:
        if self._cache is None or self._cache[0] != index:
            with pa.OSFile(str(self.path)) as f:
                f.seek(self._offsets[index])
                message = pa.ipc.read_message(f)
                if message.type == "schema":  # written with the first batch
                    message = pa.ipc.read_message(f)
            self._cache = (index, pa.ipc.read_record_batch(message, self.schema))
        return self._cache[1]

    def details(self, place: int) -> Details:
        """The moments and counts of the row at ``place`` (what a kept answer not held in
        memory reads back: :class:`~batch.store.ledger.KeptTable`)."""
        buffered = self.rows - len(self._buffer)
        if place >= buffered:
            return Details.of(self._buffer[place - buffered])
        index = bisect.bisect_right(self._starts, place) - 1
        batch, at = self._batch(index), place - self._starts[index]
        return Details.of({name: batch.column(name)[at].as_py() for name in _DETAILS})

    def take(self, places: Sequence[int]) -> list[Row]:
        """The rows at ``places``, in that order (read a batch at a time)."""
        return [Row.from_flat(values) for values in self.take_columns(places)]

    def take_columns(self, places: Sequence[int]) -> list[dict[str, object]]:
        """The base columns of the rows at ``places``, in that order, as Arrow reads them
        back: what :meth:`~batch.store.row.Row.flat` makes of the rows, with no
        :class:`Row` made in between (the report takes them as they are)."""
        if not places:
            return []
        self._flush()
        rows: list[dict[str, object] | None] = [None for _ in places]
        wanted: dict[int, list[int]] = {}
        for i, place in enumerate(places):
            wanted.setdefault(bisect.bisect_right(self._starts, place) - 1, []).append(i)
        for index, which in sorted(wanted.items()):
            start = self._starts[index]
            picked = self._batch(index).take(pa.array([places[i] - start for i in which]))
            for i, values in zip(which, picked.to_pylist(), strict=True):
                rows[i] = values
        return [row for row in rows if row is not None]

    def close(self) -> None:
        """Remove the spill (quietly: it runs after the report is written, or an error)."""
        self._cache = None
        with contextlib.suppress(OSError, pa.ArrowException):
            self._writer.close()
        with contextlib.suppress(OSError):
            self._file.close()
        self.path.unlink(missing_ok=True)
