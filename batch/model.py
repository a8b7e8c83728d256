"""Plain data passed between the stages of a run: answers, images, outcomes, evidence.

Nothing here does I/O. The AWS layer (:mod:`batch.aws`) produces :class:`SessionResult`;
the run (:mod:`batch.run`) wraps it in an :class:`Outcome`; the store
(:mod:`batch.store`) turns outcomes into report rows. Frozen dataclasses only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from batch.errors import AccessError, AuditError, ServiceError, SessionError

T = TypeVar("T")

__all__ = [
    "EVIDENCE_CODES",
    "EVIDENCE_PROBLEMS",
    "MANIFEST_FORMAT",
    "MANIFEST_FORMATS",
    "STATUSES",
    "BoundingBox",
    "Challenge",
    "Evidence",
    "Image",
    "Manifest",
    "Outcome",
    "QuotaUse",
    "Reconciliation",
    "RunSummary",
    "SessionResult",
    "Status",
    "image_names",
    "named_images",
]


class Status(StrEnum):
    """A session's status as the service names it (a ``str``: it is the report's value)."""

    CREATED = "CREATED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


STATUSES = frozenset(Status)


EVIDENCE_CODES = ("EvidenceMissing", "EvidenceChanged", "EvidenceUnverified")
EVIDENCE_PROBLEMS = EVIDENCE_CODES[:2]  # findings about the evidence itself: exit code 5


@dataclass(frozen=True, slots=True)
class BoundingBox:
    left: float | None
    top: float | None
    width: float | None
    height: float | None


@dataclass(frozen=True, slots=True)
class Image:
    """One image of a session as data: where it is, or the size and hash of its bytes."""

    bounding_box: BoundingBox | None = None
    s3_bucket: str | None = None
    s3_name: str | None = None
    s3_version: str | None = None
    size: int | None = None
    sha256: str | None = None
    # The bytes themselves are biometric data: carried only as far as the image saver,
    # never printed (repr=False), never written to the report.
    data: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Challenge:
    """Which check the user did: ``FaceMovementAndLightChallenge`` or
    ``FaceMovementChallenge`` (a newer type is kept as the service names it), and its
    version."""

    type: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class SessionResult:
    session_id: str
    status: Status
    confidence: float | None
    reference_image: Image | None
    audit_images: tuple[Image, ...]
    challenge: Challenge | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What S3 says about one stored image."""

    status: str  # present | changed | missing | forbidden | error
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    last_modified: datetime | None = None
    message: str | None = None


def named_images(reference: T | None, audits: Iterable[T]) -> list[tuple[str, T]]:
    """``("reference", reference)``, ``("audit-0", audit)``, ...: the one naming of images.

    Generic so that report rows read back (dicts) are named like results (:class:`Image`).
    """
    named = [("reference", reference)] if reference is not None else []
    return named + [(f"audit-{i}", image) for i, image in enumerate(audits)]


def image_names(result: SessionResult) -> list[tuple[str, Image]]:
    """``("reference", image)``, ``("audit-0", image)``, ... as the report names them."""
    return named_images(result.reference_image, result.audit_images)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one session: a result, or the error that ended its attempts."""

    session_id: str
    result: SessionResult | None
    error_code: str | None
    error_message: str | None
    attempts: int
    fetched_at: datetime | None
    final: bool  # a definitive answer; False means a rerun should try again
    evidence: Mapping[str, Evidence] | None = None  # --verify-evidence, by image name

    @classmethod
    def answered(cls, result: SessionResult, attempts: int) -> Outcome:
        return cls(result.session_id, result, None, None, attempts, datetime.now(UTC), True)

    @classmethod
    def failed(cls, session_id: str, error: ServiceError, attempts: int) -> Outcome:
        final = isinstance(error, SessionError)
        now = datetime.now(UTC)
        return cls(session_id, None, error.code, error.message, attempts, now, final)

    @classmethod
    def not_attempted(cls, session_id: str, message: str) -> Outcome:
        return cls(session_id, None, "NotAttempted", message, 0, None, False)


MANIFEST_FORMAT = "liveness-audit-manifest/2"
MANIFEST_FORMATS = ("liveness-audit-manifest/1", MANIFEST_FORMAT)  # what verify can check


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a report says of itself: its rows, their hash, the input's hash.

    See :mod:`batch.store.manifest` for how ``rows_sha256`` is computed and checked.
    """

    rows: int
    input_sha256: str
    rows_sha256: str
    format: str = MANIFEST_FORMAT
    digest: str = "sha256 of column streams"
    sketch: str | None = None  # /2: names edited rows (:class:`batch.store.fingerprint.Sketch`)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """The quota a run knew of, its cap (quota x share) and how much of it the run used."""

    quota: float  # requests per second the account may make (this operation, this region)
    cap: float  # requests per second this run allowed itself at most
    source: str  # where the quota came from: "--quota" or "Service Quotas"
    rate: float  # requests per second the run made (every attempt, over its wall time)
    throttled: int  # of its requests, answered with throttling
    requests: int

    @property
    def used(self) -> float:
        """The share of the quota the run used: ``rate / quota``."""
        return self.rate / self.quota

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        """JSON-ready, for the provenance and the ``end`` event."""
        return {
            "quota": self.quota,
            "cap": round(self.cap, 3),
            "source": self.source,
            "rate": round(self.rate, 3),
            "used": round(self.used, 4),
            "throttled": self.throttled,
            "throttled_share": round(self.throttled_share, 4),
        }


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The application's decisions against the service's (:mod:`batch.reconcile`)."""

    agreed: int
    disagreed: int
    unverifiable: int  # no result from the service, or no usable application decision
    bad_input: int  # rows whose decision or confidence could not be read

    def line(self) -> str:
        bad = f"; {self.bad_input} with a bad decision or confidence" if self.bad_input else ""
        return (
            f"reconciled: {self.agreed} agree, {self.disagreed} disagree, "
            f"{self.unverifiable} unverifiable{bad}"
        )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How a run ended; the CLI turns it into an exit code and a summary line."""

    run_id: str
    report: str
    sessions: int
    unresolved: int
    not_attempted: int
    aborted: AccessError | None
    stop_reason: str | None
    line: str
    by_status: dict[str, int]
    by_error: dict[str, int]
    requests: int
    throttled: int
    wall: float
    manifest: Manifest
    publish_error: AuditError | None = None
    pending: int = 0  # sessions still CREATED/IN_PROGRESS at the end
    settle: float = 0.0  # seconds each pending session was waited for (0: not at all)
    quota: QuotaUse | None = None  # when the run knew its quota (--quota)
    reconciliation: Reconciliation | None = None  # with --app-decision-column
    kept_conflicts: int = 0  # repeated IDs whose kept input values differ (first row kept)

    @property
    def disagreements(self) -> int:
        """Sessions whose application decision the service's answer contradicts."""
        return self.reconciliation.disagreed if self.reconciliation else 0

    @property
    def errors(self) -> int:
        """Sessions whose row carries an error code (per-session, invalid or unresolved)."""
        return sum(self.by_error.values())

    @property
    def evidence_problems(self) -> int:
        """Sessions whose stored images are missing or changed in S3."""
        return sum(self.by_error.get(code, 0) for code in EVIDENCE_PROBLEMS)
