"""A deterministic synthetic population of Face Liveness sessions.

Session IDs are UUID4 strings derived from ``(seed, index)``; every attribute of a session
(status, confidence, images, age) derives from a hash of ``(seed, session_id)``, so two
emulators with the same seed serve the same answers and a test can compute the expected
answer with :meth:`Population.response` without storing anything.

Roughly 60% SUCCEEDED, 15% FAILED, 10% EXPIRED, 8% IN_PROGRESS, 7% CREATED; indexes 0-4
are one of each, index 5 is SUCCEEDED with confidence 100.0 and index 6 FAILED with 0.0.
Finished sessions carry a reference image (95%) and 0-4 audit images, either inline bytes
(a fake JPEG) or an S3 object, about half each. Sessions the user started (``IN_PROGRESS``,
``SUCCEEDED``, ``FAILED``) carry ``Challenge {Type, Version}``, as today's API does: about
70% ``FaceMovementAndLightChallenge``, the rest ``FaceMovementChallenge``.

With a lifetime (:mod:`batch.emulator.lifecycle`) the fixed status is where the session's
life ends: :meth:`Population.plan` spreads the sessions' creation over the last lifetime
and gives the finished ones a start and a finish; the started-but-unfinished
(``IN_PROGRESS``) and never-started (``CREATED``, ``EXPIRED``) ones end ``EXPIRED``.

:func:`write_input` writes the IDs as an input file; with ``reconcile_with`` it adds a
``customer_ref`` and the ``app_decision`` an application would have made from the
session's answer at threshold 80, with a few planted disagreements
(:func:`planted_disagreements`) for the reconciliation demo and tests.
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batch.emulator.lifecycle import Plan, unit

__all__ = [
    "CHALLENGE_TYPES",
    "EVIDENCE_BUCKET",
    "Population",
    "challenge",
    "planted_disagreements",
    "write_input",
]

EVIDENCE_BUCKET = "liveness-audit-evidence"
_FIRST = ("SUCCEEDED", "FAILED", "EXPIRED", "IN_PROGRESS", "CREATED")
_WEIGHTS = (("SUCCEEDED", 0.60), ("FAILED", 0.75), ("EXPIRED", 0.85), ("IN_PROGRESS", 0.93))
_MAX_AGE = 3600.0
CHALLENGE_TYPES = ("FaceMovementAndLightChallenge", "FaceMovementChallenge")
_STARTED = ("IN_PROGRESS", "SUCCEEDED", "FAILED")
THRESHOLD = 80.0  # the confidence at or above which an application decides "pass"
PLANT_EVERY = 97  # every 97th row of a reconciliation input has its decision flipped


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
        status = self.status(session_id)
        if status is None:
            return None
        if expire_after is not None and self.age_seconds(session_id) > expire_after:
            return {"SessionId": session_id, "Status": "EXPIRED"}
        return self.body(session_id, status)

    def body(self, session_id: str, status: str) -> dict[str, Any]:
        """The answer for ``session_id`` in ``status``: also for sessions created later."""
        index = self._index.get(session_id, -1)
        rng = self._rng(session_id)
        rng.random()  # the status draw: the rest of the body follows it, as always
        body: dict[str, Any] = {"SessionId": session_id, "Status": status}
        if status in _STARTED:
            body["Challenge"] = challenge(self.seed, session_id)
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

    def plan(self, session_id: str, lifetime: float) -> Plan | None:
        """The timeline of a population session when sessions live ``lifetime`` seconds:
        created up to a lifetime before the reset, started 2-12% of the lifetime after
        creation and, if it ends with a result, finished 2-12% later."""
        status = self.status(session_id)
        if status is None:
            return None
        age = self.age_seconds(session_id) / _MAX_AGE * lifetime
        start = lifetime * (0.02 + 0.10 * unit("start", self.seed, session_id))
        finish = start + lifetime * (0.02 + 0.10 * unit("finish", self.seed, session_id))
        finished = status in ("SUCCEEDED", "FAILED")
        return Plan(
            created_at=-age,
            start_after=start if finished or status == "IN_PROGRESS" else None,
            finish_after=finish if finished else None,
            outcome=status if finished else None,  # type: ignore[arg-type]  # checked above
        )

    def region(self, session_id: str, regions: tuple[str, ...]) -> str:
        """The region (one of ``regions``) a session lives in."""
        return regions[int(unit("region", self.seed, session_id) * len(regions))]


def challenge(seed: int, session_id: str) -> dict[str, str]:
    """The liveness challenge a session's user was given (deterministic per session)."""
    kind = CHALLENGE_TYPES[0] if unit("challenge", seed, session_id) < 0.7 else CHALLENGE_TYPES[1]
    version = "2.0.0" if unit("challenge-version", seed, session_id) < 0.25 else "1.0.0"
    return {"Type": kind, "Version": version}


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


def _decision(body: dict[str, Any] | None) -> str:
    """What an application decided from ``body``: pass at or above the threshold."""
    ok = body is not None and body["Status"] == "SUCCEEDED" and body["Confidence"] >= THRESHOLD
    return "pass" if ok else "fail"


def planted_disagreements(population: Population, ids: Iterable[str]) -> frozenset[str]:
    """The IDs whose decision :func:`write_input` flips and the service can contradict:
    every 97th row (rows 96, 193, ...) whose session has a result."""
    return frozenset(
        sid
        for row, sid in enumerate(ids, start=1)
        if row % PLANT_EVERY == 0 and population.status(sid) in ("SUCCEEDED", "FAILED")
    )


def _columns(ids: list[str], population: Population | None) -> dict[str, list[str]]:
    columns = {"session_id": ids}
    if population is None:
        return columns
    planted = planted_disagreements(population, ids)
    decisions = []
    for sid in ids:
        decision = _decision(population.response(sid))
        if sid in planted:
            decision = "fail" if decision == "pass" else "pass"
        decisions.append(decision)
    columns["customer_ref"] = [
        f"CUST-{int(unit('customer', population.seed, sid) * 1e6):06d}" for sid in ids
    ]
    columns["app_decision"] = decisions
    return columns


def write_input(
    path: Path, ids: Iterable[str], *, reconcile_with: Population | None = None
) -> None:
    """Write ``ids`` as an input file: ``.csv`` (header ``session_id``) or ``.parquet``.

    With ``reconcile_with`` (the population answering them) also write ``customer_ref``
    and ``app_decision`` (``pass``/``fail``) columns, planted disagreements included.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"cannot write input {path}: use a .csv or .parquet file name")
    columns = _columns(list(ids), reconcile_with)
    if suffix == ".csv" and reconcile_with is None:
        with path.open("w", encoding="utf-8", newline="") as f:  # IDs as given, hostile or not
            f.write("session_id\n")
            f.writelines(f"{sid}\n" for sid in columns["session_id"])
    elif suffix == ".csv":
        import csv  # noqa: PLC0415  # only this branch needs it

        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(zip(*columns.values(), strict=True))
    else:
        import pyarrow as pa  # noqa: PLC0415  # only this branch needs it
        import pyarrow.parquet as pq  # noqa: PLC0415

        table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
        pq.write_table(table, path)
