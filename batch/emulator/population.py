"""A deterministic synthetic population of Face Liveness sessions.

Session IDs are UUID4 strings derived from ``(seed, index)``; every attribute of a session
(status, confidence, images, age) derives from a hash of ``(seed, session_id)``, so two
emulators with the same seed serve the same answers and a test can compute the expected
answer with :meth:`Population.response` without storing anything.

Roughly 60% SUCCEEDED, 15% FAILED, 10% EXPIRED, 8% IN_PROGRESS, 7% CREATED; indexes 0-4
are one of each, index 5 is SUCCEEDED with confidence 100.0 and index 6 FAILED with 0.0.
Finished sessions carry a reference image (95%) and 0-4 audit images, either inline bytes
(a fake JPEG) or an S3 object, about half each.
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["EVIDENCE_BUCKET", "Population", "write_input"]

EVIDENCE_BUCKET = "liveness-audit-evidence"
_FIRST = ("SUCCEEDED", "FAILED", "EXPIRED", "IN_PROGRESS", "CREATED")
_WEIGHTS = (("SUCCEEDED", 0.60), ("FAILED", 0.75), ("EXPIRED", 0.85), ("IN_PROGRESS", 0.93))
_MAX_AGE = 3600.0


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


class Population:
    """``size`` sessions for ``seed``; answers are pure functions of the session ID."""

    def __init__(self, seed: int, size: int) -> None:
        if size < 0:
            raise ValueError(f"size must not be negative, got {size!r}")
        self.seed = seed
        self.size = size
        self._ids = tuple(
            str(uuid.UUID(bytes=_digest(seed, i)[:16], version=4)) for i in range(size)
        )
        self._index = {sid: i for i, sid in enumerate(self._ids)}

    def ids(self) -> tuple[str, ...]:
        return self._ids

    def __len__(self) -> int:
        return self.size

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._index

    def age_seconds(self, session_id: str) -> float:
        """How long ago the session ran, in [0, 3600): for modelling expiry."""
        return int.from_bytes(_digest("age", self.seed, session_id)[:8]) % 3_600_000 / 1000

    def status(self, session_id: str) -> str | None:
        index = self._index.get(session_id)
        if index is None:
            return None
        return self._status(index, self._rng(session_id))

    def _rng(self, session_id: str) -> random.Random:
        return random.Random(int.from_bytes(_digest(self.seed, session_id)[:8]))  # noqa: S311  # synthetic data

    def _status(self, index: int, rng: random.Random) -> str:
        draw = rng.random()
        if index < len(_FIRST):
            return _FIRST[index]
        if index == 5:
            return "SUCCEEDED"
        if index == 6:
            return "FAILED"
        return next((status for status, upto in _WEIGHTS if draw < upto), "CREATED")

    def response(
        self, session_id: str, *, expire_after: float | None = None
    ) -> dict[str, Any] | None:
        """The JSON body the service answers for ``session_id`` (None: unknown session)."""
        index = self._index.get(session_id)
        if index is None:
            return None
        rng = self._rng(session_id)
        status = self._status(index, rng)
        if expire_after is not None and self.age_seconds(session_id) > expire_after:
            return {"SessionId": session_id, "Status": "EXPIRED"}
        body: dict[str, Any] = {"SessionId": session_id, "Status": status}
        if status not in ("SUCCEEDED", "FAILED"):
            return body
        if index in (5, 6):
            body["Confidence"] = 100.0 if index == 5 else 0.0
        elif status == "SUCCEEDED":
            body["Confidence"] = round(rng.uniform(50, 100), 4)
        else:
            body["Confidence"] = round(rng.uniform(0, 60), 4)
        inline = rng.random() < 0.5
        versioned = rng.random() < 0.5
        if rng.random() < 0.95:
            body["ReferenceImage"] = _image(session_id, "reference", rng, inline, versioned)
        body["AuditImages"] = [
            _image(session_id, f"audit-{k}", rng, inline, versioned)
            for k in range(rng.randint(0, 4))
        ]
        return body


def _image(
    session_id: str, name: str, rng: random.Random, inline: bool, versioned: bool
) -> dict[str, Any]:
    box = {
        "Width": round(rng.uniform(0.2, 0.6), 4),
        "Height": round(rng.uniform(0.2, 0.6), 4),
        "Left": round(rng.uniform(0.0, 0.4), 4),
        "Top": round(rng.uniform(0.0, 0.4), 4),
    }
    if inline:
        size = rng.randint(200, 2000)
        data = b"\xff\xd8\xff\xe0" + rng.randbytes(size - 6) + b"\xff\xd9"
        return {"BoundingBox": box, "Bytes": base64.b64encode(data).decode()}
    s3: dict[str, str] = {"Bucket": EVIDENCE_BUCKET, "Name": f"liveness/{session_id}/{name}.jpg"}
    if versioned:
        s3["Version"] = hashlib.md5(
            f"{session_id}/{name}".encode(), usedforsecurity=False
        ).hexdigest()
    return {"BoundingBox": box, "S3Object": s3}


def write_input(path: Path, ids: Iterable[str]) -> None:
    """Write ``ids`` as an input file: ``.csv`` (header ``session_id``) or ``.parquet``."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            f.write("session_id\n")
            f.writelines(f"{sid}\n" for sid in ids)
    elif suffix == ".parquet":
        import pyarrow as pa  # noqa: PLC0415  # only this branch needs it
        import pyarrow.parquet as pq  # noqa: PLC0415

        pq.write_table(pa.table({"session_id": pa.array(list(ids), pa.string())}), path)
    else:
        raise ValueError(f"cannot write input {path}: use a .csv or .parquet file name")
