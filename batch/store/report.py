"""The Parquet report: one row per unique session ID, written atomically in record batches.

Columns (names are a contract; see the README for meanings and null semantics)::

    session_id              string     the normalised ID (or the rejected cell, escaped)
    status                  string     CREATED | IN_PROGRESS | SUCCEEDED | FAILED | EXPIRED
    confidence              double     0-100; null when the service gave none
    challenge_type          string     FaceMovementAndLightChallenge | FaceMovementChallenge
    challenge_version       string     the challenge's version
    error_code              string     null on success
    error_message           string
    attempts                int32      calls made for this session (0: never sent)
    fetched_at              timestamp  UTC, when the kept answer arrived
    checked_at              timestamp  UTC, when the session was last asked (any run)
    checks                  int32      calls made for the session over all runs
    reference_bbox_*        double     left, top, width, height of the face
    reference_s3_*          string     bucket, name, version when stored in S3
    reference_bytes_size    int64      size of inline bytes (the bytes are not stored)
    reference_bytes_sha256  string     SHA-256 of inline bytes
    reference_image_path    string     where --save-images wrote them (a path or s3:// URL)
    reference_evidence      string     --verify-evidence: present | changed | missing |
                                       forbidden | error (see batch.evidence)
    reference_evidence_*    size, etag, version_id, last_modified of the S3 object
    audit_image_count       int32
    audit_images            list<struct> the same fields per audit image

Then, in every report of ``run``::

    region                  string     the AWS region the session was asked in
                                       (--region-column); null without that option, and
                                       for a row whose region was rejected (InvalidRegion)

A run with ``--keep-columns`` adds those input columns after these, under their own names
and types (an input column named ``region`` kept without ``--region-column`` takes the
place of the null one); a run with ``--app-decision-column`` then adds the reconciliation
(:mod:`batch.reconcile`)::

    app_decision            string     pass | fail: the application's decision; null if bad
    app_decision_error      string     why the input's decision or confidence was not usable
    app_confidence          double     the application's confidence, when given
    service_decision        string     pass | fail by the service's answer; null: no result
    agrees                  bool       null: unverifiable (no result, or no usable decision)
    disagreement            string     decision | confidence | null

:func:`report_schema` builds a run's schema once; :data:`SCHEMA` is the base one (also the
checkpoint journal's).

Rows go to a temporary file next to the report (``batch_rows`` at a time) and the file is
renamed over REPORT only when complete, so REPORT is never half-written.

The base columns are declared once, as the fields of :class:`~batch.store.row.Row`
(:data:`SCHEMA` is derived from it): a row is made from an outcome there
(:meth:`~batch.store.row.Row.of`) and turned back into what it was made from there, so a
local step (evidence check, image save) can be redone on a kept answer without asking the
service again. A report is also what the next run starts from (:mod:`batch.store.ledger`):
:func:`read_rows` reads an existing report back as rows (a report written before a column
existed reads with that column empty).
A write that fails (a full disk) raises :class:`~batch.errors.StorageError` naming the
file; the run stops on it and its checkpoint is kept. Run provenance goes into the file's
key-value metadata under ``liveness_audit``, the manifest (row count, input hash, hash
over the rows; :mod:`batch.store.manifest`) under ``liveness_audit_manifest``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from batch.errors import ConfigError, InputError, OutputError, StorageError
from batch.store.encoding import read_footer
from batch.store.files import PRIVATE, AtomicFile, check_target, storage_error
from batch.store.inputs import InvalidId
from batch.store.manifest import MANIFEST_KEY, Manifest, RowDigest
from batch.store.row import IMAGE_FIELDS, SCHEMA, Row

__all__ = [
    "IMAGE_FIELDS",
    "METADATA_KEY",
    "RECONCILED_FIELDS",
    "REGION_FIELD",
    "SCHEMA",
    "ReportWriter",
    "Row",
    "check_output",
    "invalid_row",
    "iter_rows",
    "read_provenance",
    "read_rows",
    "read_table",
    "report_schema",
]

METADATA_KEY = b"liveness_audit"

RECONCILED_FIELDS = (
    pa.field("app_decision", pa.string()),
    pa.field("app_decision_error", pa.string()),
    pa.field("app_confidence", pa.float64()),
    pa.field("service_decision", pa.string()),
    pa.field("agrees", pa.bool_()),
    pa.field("disagreement", pa.string()),
)


REGION_FIELD = pa.field("region", pa.string())


def report_schema(
    kept_fields: Sequence[pa.Field] = (),
    *,
    reconciled: bool = False,
    region_column: str | None = None,
) -> pa.Schema:
    """The base columns, ``region``, the input's kept columns, the reconciliation's.

    A kept column named like a report column is refused (:class:`ConfigError`): the report
    would hold two columns of one name, or the input's value would pass for the service's.
    A kept input column named ``region`` is the report's ``region`` when it is the
    ``region_column`` (normalised there), or, without one, stands in for it (as kept).
    """
    name = REGION_FIELD.name
    taken = {*SCHEMA.names, *(f.name for f in RECONCILED_FIELDS)}
    if region_column is not None:
        taken.add(name)
    for kept in kept_fields:
        if kept.name in taken and not kept.name == name == region_column:
            raise ConfigError(
                f"invalid setting 'keep_columns': {kept.name!r} is a column of the report "
                "itself; keep another column, or rename it in the input"
            )
    stands_in = region_column is None and any(f.name == name for f in kept_fields)
    kept = [f for f in kept_fields if not (f.name == name == region_column)]
    region = [] if stands_in else [REGION_FIELD]
    extra = list(RECONCILED_FIELDS) if reconciled else []
    return pa.schema([*SCHEMA, *region, *kept, *extra])


def read_table(path: Path) -> pa.Table:
    """The report at ``path``, read through one open file.

    Reports are replaced whole (written beside, then renamed over), and ``follow``
    republishes its report as answers come. Given a path, pyarrow may open it more than
    once, and a rename in between mixes one version's footer with another's pages
    ("Deserializing page header failed"). One open file is one version, old or new.
    """
    with path.open("rb") as f:
        return pq.read_table(f)


def read_rows(path: Path) -> list[Row]:
    """Every row of an existing report (:func:`iter_rows`), as a list: for small reports."""
    return list(iter_rows(path))


def iter_rows(path: Path) -> Iterator[Row]:
    """The rows of an existing report (with the file's other columns, kept input columns
    and the reconciliation, as :attr:`~batch.store.row.Row.extras`), a batch at a time:
    only one batch's rows are Python objects at once.

    A report written before a column existed reads with it empty. A file that is not a
    readable report is refused (OutputError): it is never overwritten, it may hold
    answers no rerun can bring back.
    """
    try:
        with path.open("rb") as f:
            report = pq.ParquetFile(f)
            if "session_id" not in report.schema_arrow.names:
                raise OutputError(f"{path} is not a liveness-audit report (no session_id column)")
            for batch in report.iter_batches(batch_size=_ROWS_AT_ONCE):
                yield from (Row.from_flat(values) for values in batch.to_pylist())
    except (OSError, pa.ArrowException) as exc:
        raise OutputError(
            f"cannot read the existing report {path} ({exc}); it may hold answers no rerun "
            "can fetch again: move it away or name another --output"
        ) from None
    except (TypeError, ValueError) as exc:
        raise OutputError(f"cannot read the existing report {path}: {exc}") from None


_ROWS_AT_ONCE = 4_096  # rows decoded at once by iter_rows


def invalid_row(invalid: InvalidId) -> Row:
    """The row of a cell that is not a session ID: never sent, so ``attempts`` is 0."""
    return Row.invalid(invalid.value, invalid.reason)


def check_output(path: Path) -> None:
    """Fail before any call if the report could not be written at ``path``."""
    if path.is_dir():
        raise OutputError(f"output is a directory, not a file: {path} (give a file name)")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if path.suffix.lower() not in (".parquet", ".pq"):
        raise OutputError(f"output must be a .parquet file, got {path.name!r}")
    check_target(path, "report")


Decorate = Callable[[dict[str, Any]], dict[str, Any]]


GROUP_BATCHES = 8  # record batches per Parquet row group (8,000 rows by default)


class ReportWriter:
    """Streams rows to a temporary Parquet file and renames it over the report at the end.

    ``schema`` is the run's (:func:`report_schema`); ``decorate`` completes every row as it
    is added (the kept columns and the reconciliation: :class:`batch.reconcile.Annotator`).
    Rows become a record batch every ``batch_rows``, batches a row group every
    ``GROUP_BATCHES`` batches' worth: row groups of 1,000 rows made a report ten times
    the size (zstd per small page) and slower to read.
    """

    def __init__(  # the writer's options, named
        self,
        path: Path,
        *,
        batch_rows: int = 1000,
        mode: int = PRIVATE,
        file: AtomicFile | None = None,
        schema: pa.Schema = SCHEMA,
        decorate: Decorate | None = None,
    ) -> None:
        """``file``: the temporary file to write (a new :class:`AtomicFile` beside ``path``)."""
        check_output(path)
        self.path = path
        self.schema, self._decorate = schema, decorate
        self.rows = 0
        self._batch_rows = batch_rows
        self._buffer: list[dict[str, object]] = []
        self._group: list[pa.RecordBatch] = []  # batches of the row group being filled
        self._group_rows = 0
        self._digest = RowDigest()
        self._failure: StorageError | None = None  # the first failed write
        self._copied: pq.FileMetaData | None = None  # row groups taken as they are
        # pyarrow imports pandas on its first conversion (~0.2 s): pay it now, not in the
        # middle of a paced run where it would stall every worker at once.
        pa.array([""])
        self._file = file or AtomicFile(path, mode=mode, what="report")
        # one stream for the writer and the copied bytes, so its offsets count both
        self._sink = pa.PythonFile(self._file.file, mode="w")
        try:
            self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd")
        except (OSError, pa.ArrowException) as exc:
            self._file.discard()
            raise OutputError(f"cannot write the report next to {path}: {exc}") from None

    def complete(self, row: Row) -> dict[str, Any]:
        """``row``'s columns as this report writes them (``decorate``d)."""
        values: dict[str, Any] = row.flat()
        return self._decorate(values) if self._decorate else values

    def add(self, row: Row) -> None:
        self.add_columns(row.flat())

    def add_columns(self, values: dict[str, Any]) -> None:
        """A row as its columns (:meth:`Row.flat`), completed as :meth:`add` completes it."""
        self._buffer.append(self._decorate(values) if self._decorate else values)
        if len(self._buffer) >= self._batch_rows:
            self._flush()

    def write_batch(self, batch: pa.RecordBatch) -> None:
        """Rows already in the report's columns and types (a merge streaming an existing
        report), after the rows added before them."""
        self._flush()
        if not batch.schema.equals(self.schema):  # nullability, metadata: the report's
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        self._write(batch)

    def _flush(self) -> None:
        """Write the buffered rows; :class:`StorageError` if the disk refuses them."""
        if self._failure is not None:  # the file is in an unknown state: write no more
            raise self._failure
        if self._buffer:
            self._write(pa.RecordBatch.from_pylist(self._buffer, schema=self.schema))
            self._buffer.clear()

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._failure is not None:
            raise self._failure
        if not batch.num_rows:
            return
        self._digest.update(batch)
        self.rows += batch.num_rows
        self._group.append(batch)
        self._group_rows += batch.num_rows
        if self._group_rows >= self._batch_rows * GROUP_BATCHES:
            self._write_group()

    def _write_group(self) -> None:
        """Write the row group being filled; :class:`StorageError` if the disk refuses it."""
        if not self._group:
            return
        table = pa.Table.from_batches(self._group, schema=self.schema)
        self._group, self._group_rows = [], 0
        try:
            self._writer.write_table(table, row_group_size=table.num_rows)
        except OSError as exc:
            self._failure = storage_error("report", self._file.tmp, exc)
            raise self._failure from None

    def copy_row_groups(self, report: pq.ParquetFile, source: pa.NativeFile) -> bool:
        """Begin with every row of ``report`` (read through ``source``), its row groups
        copied byte for byte: not decoded and encoded again (issue 19: a merge that only
        adds rows then costs what reading the report costs). Whether it did.

        Only as the first thing written, into a report of the same columns (in Arrow and
        in Parquet); otherwise nothing is written and the caller streams the rows. The
        copied row groups keep their offsets (the file starts as ``report`` does), and
        :meth:`commit` writes one footer over them and the row groups written after.
        The rows are read once more for the manifest, a column of a row group at a time
        (:meth:`~batch.store.manifest.RowDigest.update_report`). A failed read raises
        ``OSError`` or ``ArrowException`` (the caller names the report)."""
        metadata = report.metadata
        if self.rows or self._buffer or self._group or self._copied is not None:
            return False
        if not metadata.num_row_groups or not self._same_columns(report):
            return False
        end = _data_end(source)
        source.seek(len(_MAGIC))  # the writer wrote the magic bytes already
        while (left := end - source.tell()) > 0:
            chunk = source.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise OSError("the report is shorter than its footer says")
            self._write_bytes(chunk)
        self._copied = metadata
        self._digest.update_report(report)
        self.rows = self._digest.rows
        return True

    def _same_columns(self, report: pq.ParquetFile) -> bool:
        ours = _empty_footer(self.schema, {}).schema
        return bool(report.schema_arrow.equals(self.schema) and report.metadata.schema.equals(ours))

    def _write_bytes(self, chunk: bytes) -> None:
        try:
            self._sink.write(chunk)
        except OSError as exc:
            self._failure = storage_error("report", self._file.tmp, exc)
            raise self._failure from None

    def commit(self, provenance: Mapping[str, object], *, input_sha256: str) -> Manifest:
        """Write the last rows, provenance and manifest, fsync, move the file into place.

        :class:`StorageError` if a write fails (the temporary file is removed then).
        """
        self._flush()
        self._write_group()
        manifest = Manifest(
            rows=self.rows,
            input_sha256=input_sha256,
            rows_sha256=self._digest.hexdigest(),
            sketch=self._digest.sketch.to_text(),
        )
        footer = {METADATA_KEY: json.dumps(provenance), MANIFEST_KEY: manifest.to_json()}
        if self._copied is None:
            self._writer.add_key_value_metadata(footer)
        try:
            self._writer.close()
            if self._copied is not None:
                self._write_footer(footer, self._copied)
            self._file.commit()
        except OSError as exc:
            self._failure = storage_error("report", self._file.tmp, exc)
            self._file.discard()
            raise self._failure from None
        except BaseException:
            self._file.discard()
            raise
        return manifest

    def _write_footer(self, footer: Mapping[bytes, str], copied: pq.FileMetaData) -> None:
        """Replace the writer's footer (the row groups it wrote) with one over the
        ``copied`` row groups, then those, under ``footer``'s metadata."""
        metadata = _empty_footer(self.schema, footer)
        metadata.append_row_groups(copied)
        written = self._writer.writer.metadata
        if written.num_row_groups:
            metadata.append_row_groups(written)
        out = pa.BufferOutputStream()
        metadata.write_metadata_file(out)
        f = self._file.file
        f.flush()
        f.seek(_data_end(f))
        f.truncate()
        f.write(out.getvalue().to_pybytes()[len(_MAGIC) :])

    def abandon(self) -> None:
        """Drop the temporary file (the report at ``path``, if any, is left as it was).

        Never raises for the file: it runs after another error, which it must not hide.
        """
        try:
            with contextlib.suppress(OSError, pa.ArrowException):
                self._writer.close()
        finally:
            self._file.discard()


_MAGIC = b"PAR1"
_COPY_CHUNK = 1 << 20  # bytes of row groups copied at a time


def _data_end(f: BinaryIO | pa.NativeFile) -> int:
    """Where the footer of the Parquet file ``f`` begins (its row groups end there)."""
    size = f.seek(0, os.SEEK_END)
    f.seek(size - 8)
    tail = f.read(8)
    if len(tail) != 8 or tail[4:] != _MAGIC:
        raise OSError("not a Parquet file: no footer")
    return size - 8 - int.from_bytes(tail[:4], "little")


def _empty_footer(schema: pa.Schema, metadata: Mapping[bytes, str]) -> pq.FileMetaData:
    """The footer of a report of ``schema`` with no rows, under ``metadata``."""
    out = pa.BufferOutputStream()
    writer = pq.ParquetWriter(out, schema, compression="zstd")
    if metadata:
        writer.add_key_value_metadata(metadata)
    writer.close()
    return writer.writer.metadata


def read_provenance(path: Path) -> dict[str, Any]:
    """The run provenance stored in a report's footer; InputError if it has none."""
    raw = read_footer(path, METADATA_KEY, what="provenance")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InputError(f"{path} has damaged provenance: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} has damaged provenance: not an object")
    return data
