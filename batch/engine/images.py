"""Saving inline image bytes (``--save-images``): biometric data, handled as such.

Only when the user asks. Locally each image becomes an owner-only file (0600) in an
owner-only folder (0700; an existing folder open to others is refused); in S3 each is an
object written with server-side encryption (``s3_sse``). Either way the report gets the
image's location next to the SHA-256 of its bytes, so the file can be matched to the row
it belongs to. Names are
``<session_id>-reference.jpg`` and ``<session_id>-audit-<n>.jpg``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from batch.aws.s3 import S3Store
from batch.errors import OutputError
from batch.model import Outcome, image_names
from batch.store.files import PRIVATE, atomic_write
from batch.store.locations import S3Url

__all__ = ["FolderSaver", "ImageSaver", "S3Saver", "inline_images"]


class ImageSaver(Protocol):
    async def save(self, outcome: Outcome) -> dict[str, str]:
        """Write the inline images of ``outcome``; map ``reference``/``audit-N`` to where."""
        ...

    async def save_one(self, session_id: str, name: str, data: bytes) -> str:
        """Write one image (``name``: ``reference``/``audit-N``); where it went."""
        ...


def inline_images(outcome: Outcome) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of every image of ``outcome`` the service sent inline."""
    return _inline(outcome)


def _inline(outcome: Outcome) -> list[tuple[str, bytes]]:
    if outcome.result is None:
        return []
    return [
        (name, image.data) for name, image in image_names(outcome.result) if image.data is not None
    ]


class FolderSaver:
    """Owner-only files in a local folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            mode = folder.stat().st_mode & 0o777
        except OSError as exc:
            raise OutputError(f"cannot create the image folder {folder}: {exc}") from None
        if mode & 0o077:
            raise OutputError(
                f"image folder {folder} is open to others (mode {mode:o}); biometric images "
                "need a private folder: chmod 700 it or name a new one"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"image folder is not writable: {folder}")

    async def save(self, outcome: Outcome) -> dict[str, str]:
        return {
            name: await self.save_one(outcome.session_id, name, data)
            for name, data in _inline(outcome)
        }

    async def save_one(self, session_id: str, name: str, data: bytes) -> str:
        target = self.folder / f"{session_id}-{name}.jpg"
        # A new owner-only file renamed over the target: an existing file's mode, or
        # a symlink planted at the name, never decides where the bytes go. Images are
        # owner-only whatever ``file_mode`` says: they are the biometric data itself.
        with atomic_write(target, mode=PRIVATE, what="image file") as f:
            f.write(data)
        return str(target)


class S3Saver:
    """Encrypted objects under an S3 prefix, written through the run's S3 store."""

    def __init__(self, store: S3Store, prefix: S3Url) -> None:
        self._store = store
        self.prefix = prefix

    async def save(self, outcome: Outcome) -> dict[str, str]:
        return {
            name: await self.save_one(outcome.session_id, name, data)
            for name, data in _inline(outcome)
        }

    async def save_one(self, session_id: str, name: str, data: bytes) -> str:
        url = self.prefix.child(f"{session_id}-{name}.jpg")
        await self._store.put(url, data, content_type="image/jpeg")
        return str(url)
