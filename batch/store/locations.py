"""Where data lives: a local path or an S3 object, parsed once at the edge.

``INPUT``, ``--output`` and ``--save-images`` accept ``s3://bucket/key`` as well as local
paths. :func:`parse_location` turns the text into a :class:`pathlib.Path` or an
:class:`S3Url`; everything past the CLI works with those, never with raw strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Location", "S3Url", "is_s3", "normal_key", "parse_location", "parse_s3_url"]

# S3's rules for new buckets: 3-63 characters, lower-case letters, digits, dots, hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class S3Url:
    """``s3://bucket/key``; ``key`` may be a prefix (no object at it yet)."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    def child(self, name: str) -> S3Url:
        prefix = self.key.rstrip("/")
        return S3Url(self.bucket, f"{prefix}/{name}" if prefix else name)


Location = Path | S3Url


def is_s3(text: str) -> bool:
    """Whether ``text`` names an S3 location rather than a local path."""
    return text.lower().startswith("s3:")


def parse_s3_url(text: str, name: str) -> S3Url:
    """``s3://bucket/key`` -> :class:`S3Url`; ``ValueError`` naming ``name`` otherwise."""
    if not text.startswith("s3://"):
        raise ValueError(f"{name} must start with s3://, got {text!r}")
    bucket, _, key = text.removeprefix("s3://").partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"{name} has an invalid S3 bucket name {bucket!r} in {text!r}")
    return S3Url(bucket, key)


def normal_key(key: str, text: str, name: str) -> str:
    """``key`` with empty segments collapsed (``a//b`` -> ``a/b``, a leading ``/`` dropped).

    A ``.`` or ``..`` segment is refused (``ValueError`` naming ``name``): S3 would keep
    it as written, a local copy would resolve it, so two spellings would part ways.
    """
    segments = key.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise ValueError(f"{name} {text!r} has a '.' or '..' segment in its S3 key")
    kept = "/".join(segment for segment in segments if segment)
    return kept + "/" if kept and key.endswith("/") else kept


def parse_location(text: str, name: str, *, object_key: bool = True) -> Location:
    """A local path, or an S3 URL (which must name an object when ``object_key``).

    S3 keys are normalised here, once (:func:`normal_key`): ``s3://b/a//r.parquet`` and
    ``s3://b/a/r.parquet`` are one report, with one checkpoint and one lock.
    """
    if is_s3(text):
        url = parse_s3_url(text, name)
        url = S3Url(url.bucket, normal_key(url.key, text, name))
        if object_key and (not url.key or url.key.endswith("/")):
            raise ValueError(f"{name} {text!r} names no object: add a key after the bucket")
        return url
    return Path(text)
