"""Seals: the byte hash of each report this tool committed, kept in its state folder.

Verifying a report before a merge (:func:`batch.store.merge.check_base`) reads and hashes
every row: seconds per million rows. A report found byte for byte as this tool committed
it (the SHA-256 of the file equals the seal recorded then, a few milliseconds per
million rows at ~15 MB) was verified when it was written, so the merge skips the rows.
Anything else (another host wrote it, it was edited, the seal is missing) is verified
row by row. The seal lives in the tool's own state folder (owner-only), not beside the
report: whoever edits a report does not find it there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from batch.store.files import PRIVATE, atomic_write, private_dir

__all__ = ["Seals", "file_sha256"]


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Seals:
    """The seals of the reports written from this state folder, by location."""

    def __init__(self, folder: Path, *, mode: int = PRIVATE) -> None:
        self.folder = folder
        self._mode = mode

    def _path(self, location: str) -> Path:
        return self.folder / (hashlib.sha256(location.encode()).hexdigest()[:24] + ".json")

    def record(self, location: str, path: Path) -> None:
        """``path`` is the report at ``location`` as just committed."""
        private_dir(self.folder, mode=self._mode)
        text = json.dumps({"location": location, "sha256": file_sha256(path)})
        with atomic_write(self._path(location), mode=self._mode, what="seal") as f:
            f.write(text.encode())

    def holds(self, location: str, path: Path) -> bool:
        """``path`` (the report at ``location``, or its copy) is byte for byte sealed."""
        try:
            seal = json.loads(self._path(location).read_text(encoding="utf-8"))
            return bool(seal["sha256"] == file_sha256(path))
        except (OSError, ValueError, KeyError, TypeError):
            return False
