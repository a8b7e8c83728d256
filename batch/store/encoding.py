"""How report data is spelled outside Arrow: rows as JSON, run facts in the Parquet footer.

Written once here, read by the checkpoint (rows as JSON lines), the manifest (rows as
canonical JSON for hashing) and the report (provenance and manifest in the footer):

- :func:`json_default` spells a datetime as ISO 8601 (and bytes as hex) for ``json.dumps``;
  :func:`revive` turns a row read back from JSON into one with datetimes again.
- :func:`read_footer` reads one key of a Parquet file's key-value metadata, with one error
  (:class:`~batch.errors.InputError`) for a file that is not Parquet or lacks the key.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch.errors import InputError

__all__ = ["TIMESTAMP_FIELDS", "json_default", "read_footer", "revive"]

# The report's timestamp columns: top level, and inside each image (reference_ + name).
TIMESTAMP_FIELDS = ("fetched_at", "checked_at")
_IMAGE_TIMESTAMPS = ("evidence_last_modified",)


def json_default(value: Any) -> Any:
    """``default=`` of :func:`json.dumps` for report rows: datetimes ISO 8601, bytes hex."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write a {type(value).__name__} value as JSON")


def _timestamp(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def revive(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from JSON (the checkpoint): timestamps as datetimes again.

    ValueError if a timestamp is not ISO 8601.
    """
    for key in (*TIMESTAMP_FIELDS, *(f"reference_{k}" for k in _IMAGE_TIMESTAMPS)):
        if row.get(key) is not None:
            row[key] = _timestamp(row[key])
    for image in row.get("audit_images") or ():
        for key in _IMAGE_TIMESTAMPS:
            if isinstance(image, dict) and image.get(key) is not None:
                image[key] = _timestamp(image[key])
    return row


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
