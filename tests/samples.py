"""Outcomes of every shape a report row takes (a result with images, evidence and saved
paths, pending, expired, errors), built only from :mod:`batch.model`: the same code made
``tests/data/journal-main.jsonl`` with the journal of an earlier version (see
:func:`write_journal`), so a test can read it with this one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from batch.model import BoundingBox, Challenge, Evidence, Image, Outcome, SessionResult, Status

T0 = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)
PATHS = {"reference": "/srv/images/a-reference.jpg", "audit-1": "s3://keep/a-audit-1.jpg"}


def outcomes() -> list[Outcome]:
    """One outcome of each shape, at fixed moments."""
    box = BoundingBox(0.1, 0.2, 0.3, 0.4)
    reference = Image(box, size=2048, sha256="ab" * 32)
    audits = (
        Image(None, s3_bucket="b", s3_name="k/0.jpg", s3_version="v1"),
        Image(BoundingBox(0.5, None, 0.25, 0.5), size=10, sha256="cd" * 32),
    )
    result = SessionResult(
        "a", Status.SUCCEEDED, 97.25, reference, audits, Challenge("FaceMovementChallenge", "2.0")
    )
    found = {"audit-0": Evidence("present", 5, '"etag"', "v1", T0 - timedelta(days=1))}
    pending = SessionResult("b", Status.IN_PROGRESS, None, None, ())
    expired = SessionResult("c", Status.EXPIRED, None, None, ())
    return [
        Outcome("a", result, None, None, 2, T0, True, found),
        Outcome("b", pending, None, None, 1, T0 + timedelta(seconds=1), False),
        Outcome("c", expired, None, None, 1, T0 + timedelta(seconds=2), True),
        Outcome("d", None, "ThrottlingException", "slow down", 10, T0, False),
        Outcome("e", None, "SessionNotFoundException", "no such session", 1, T0, True),
        Outcome.not_attempted("f", "run ended before this session was fetched (stopped)"),
    ]


HEADER = {"input_sha256": "0" * 64, "input_column": "session_id", "input_format": "csv"}
