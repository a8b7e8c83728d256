"""The report's manifest: row count, input hash and a hash over the rows.

Every report carries, in its Parquet key-value metadata under ``liveness_audit_manifest``::

    {"format": "liveness-audit-manifest/1", "rows": 12345,
     "input_sha256": "<SHA-256 of the input file, byte for byte>",
     "rows_sha256": "<SHA-256 over the rows>", "digest": "sha256 of canonical JSON lines"}

``rows_sha256`` hashes every row, in file order, as one line of canonical JSON (keys
sorted, no spaces, UTF-8, timestamps in ISO 8601), so it does not depend on how rows are
grouped into record batches or row groups, and any edit of a value, any added, removed or
reordered row changes it. :func:`verify_report` recomputes it from the file.

What the manifest proves is that the rows are the ones the run wrote. Someone able to
rewrite the file can also rewrite its manifest, so the run also prints and logs
``rows_sha256`` (the ``end`` event): kept in a log the editor cannot reach, it pins the
report (``liveness-audit verify REPORT --sha256 DIGEST``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch.errors import InputError
from batch.model import MANIFEST_FORMAT, Manifest
from batch.store.encoding import json_default, read_footer

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_KEY",
    "Manifest",
    "RowDigest",
    "Verification",
    "read_manifest",
    "verify_report",
]

MANIFEST_KEY = b"liveness_audit_manifest"


def canonical(row: Mapping[str, Any]) -> bytes:
    """One row as the bytes that are hashed: canonical JSON and a newline."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=json_default)
    return text.encode() + b"\n"


class RowDigest:
    """SHA-256 over rows fed batch by batch, independent of the batching."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.rows = 0

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        for row in batch.to_pylist():
            self._hash.update(canonical(row))
        self.rows += batch.num_rows

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True, slots=True)
class Verification:
    """What :func:`verify_report` found; ``problems`` is empty when the report is intact."""

    manifest: Manifest
    rows: int
    rows_sha256: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(path: Path) -> Manifest:
    """The manifest stored in the report at ``path``; InputError if it has none."""
    raw = read_footer(path, MANIFEST_KEY, what="manifest")
    try:
        data = json.loads(raw)
        manifest = Manifest(
            rows=int(data["rows"]),
            input_sha256=str(data["input_sha256"]),
            rows_sha256=str(data["rows_sha256"]),
            format=str(data["format"]),
            digest=str(data["digest"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} has a damaged manifest: {exc}") from None
    if manifest.format != MANIFEST_FORMAT:
        raise InputError(f"{path} has a manifest of unknown format {manifest.format!r}")
    return manifest


def verify_report(
    path: Path, *, input_sha256: str | None = None, rows_sha256: str | None = None
) -> Verification:
    """Recompute the rows' hash of ``path`` and compare it with its manifest.

    ``input_sha256`` / ``rows_sha256``, when given, must match as well: the hash of the
    input the auditor holds, and a digest recorded outside the report.
    """
    manifest = read_manifest(path)
    digest = RowDigest()
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            digest.update(batch)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read the rows of {path}: {exc}") from None
    problems = []
    if digest.rows != manifest.rows:
        problems.append(f"the manifest says {manifest.rows} rows, the file holds {digest.rows}")
    if digest.hexdigest() != manifest.rows_sha256:
        problems.append("the rows do not hash to the manifest's rows_sha256: rows were edited")
    if rows_sha256 is not None and rows_sha256.lower() != manifest.rows_sha256:
        problems.append(
            f"the manifest's rows_sha256 {manifest.rows_sha256} is not the recorded one"
        )
    if input_sha256 is not None and input_sha256 != manifest.input_sha256:
        problems.append(
            f"the input hashes to {input_sha256}, the manifest names {manifest.input_sha256}"
        )
    return Verification(manifest, digest.rows, digest.hexdigest(), tuple(problems))
