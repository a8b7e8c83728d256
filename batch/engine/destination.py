"""Where a run's report goes, decided and checked once before anything is sent.

A local ``--output`` is the report itself. An S3 ``--output`` is written (and
checkpointed) in the work directory, then uploaded: an interrupted run resumes there and
only a complete report is uploaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from batch.errors import ConfigError
from batch.store.files import PRIVATE, private_dir
from batch.store.locations import Location, S3Url
from batch.store.report import check_output

__all__ = ["Destination", "default_work_dir", "destination_for", "local_key"]


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the report goes: written at ``local``, then published to ``remote`` if set."""

    local: Path
    remote: S3Url | None = None

    def __str__(self) -> str:
        return str(self.remote or self.local)


def destination_for(target: Location, work_dir: Path, *, mode: int = PRIVATE) -> Destination:
    """The checked destination of ``target``; OutputError when it cannot be written."""
    if isinstance(target, Path):
        destination = Destination(target)
    else:
        local = work_dir / "reports" / target.bucket / local_key(target.key)
        private_dir(local.parent, mode=mode)
        destination = Destination(local, target)
    check_output(destination.local)
    return destination


def default_work_dir() -> Path:
    """``$XDG_STATE_HOME/liveness-audit``, else ``~/.local/state/liveness-audit``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "liveness-audit"


def local_key(key: str) -> Path:
    """An S3 key as a relative path that stays inside the folder it is joined to."""
    parts = [part for part in key.split("/") if part not in ("", ".")]
    if ".." in parts or not parts:
        raise ConfigError(f"invalid --output: the S3 key {key!r} cannot be a local path")
    return Path(*parts)
