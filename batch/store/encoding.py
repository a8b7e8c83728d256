"""How report data is spelled outside Arrow: rows as JSON, run facts in the Parquet footer.

Written once here, read by the checkpoint (rows as JSON lines), the manifest (rows as
canonical JSON for hashing) and the report (provenance and manifest in the footer):

- :func:`json_default` spells a datetime as ISO 8601 (and bytes as hex) for ``json.dumps``;
  a row read back from JSON is parsed by its declared types
  (:meth:`batch.store.row.Row.from_flat`: timestamps are datetimes again).
- :func:`read_footer` reads one key of a Parquet file's key-value metadata, with one error
  (:class:`~batch.errors.InputError`) for a file that is not Parquet or lacks the key.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batch.errors import InputError

__all__ = ["json_default", "read_footer"]


def json_default(value: object) -> str:
    """``default=`` of :func:`json.dumps` for report rows: datetimes ISO 8601, bytes hex."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write a {type(value).__name__} value as JSON")


def read_footer(path: Path, key: bytes, *, what: str) -> bytes:
    """The value under ``key`` in the footer of the Parquet file at ``path``.

    InputError if the file cannot be read as Parquet, or carries no ``what`` (the
    message says so: not written by liveness-audit, or rewritten by another tool).
    """
    try:
        metadata = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read {path} as a Parquet report: {exc}") from None
    raw = metadata.get(key)
    if raw is None:
        raise InputError(
            f"{path} carries no liveness-audit {what} (not written by liveness-audit, "
            "or rewritten by another tool)"
        )
    return bytes(raw)
