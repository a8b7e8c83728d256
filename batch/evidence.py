"""Audit evidence in S3: does every image the service stored still exist, unchanged?

When a session was created with an ``OutputConfig``, the service stores its reference and
audit images in S3 and the result names them (bucket, key and, in a versioned bucket, the
version it wrote). With ``--verify-evidence`` each named object is checked with a HEAD
through the run's :class:`~batch.aws.s3.S3Store` (its limiter and retry policy), and the
report records per image::

    present    the object is at its key (and is the version the service wrote)
    changed    the key holds another version than the one the service wrote
    missing    nothing is at the key (deleted; its version may survive, see message)
    forbidden  S3 refused the HEAD (403): grant s3:GetObject (and s3:ListBucket, without
               which S3 answers 403 for a missing object too); the session stays
               unresolved so that a rerun checks again
    error      the HEAD kept failing (throttled, 5xx, network) after every retry, or got
               an answer S3 should not give; unresolved as well

with the object's size, ETag, version and last-modified time, so a later audit can tell
whether an unversioned object changed since. A session's row then carries the worst
finding as its error code: ``EvidenceMissing``, ``EvidenceChanged``, ``EvidenceUnverified``.

Later, :func:`recheck_evidence` (``liveness-audit verify REPORT --evidence``) looks at every
object a report found present again and names those deleted or changed since.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batch.aws.s3 import S3Store
from batch.errors import AccessError, InputError, NotFoundError, ServiceError
from batch.model import (
    EVIDENCE_CODES,
    Evidence,
    Image,
    Outcome,
    SessionResult,
    image_names,
    named_images,
)
from batch.store.locations import S3Url

__all__ = [
    "Recheck",
    "evidence_error",
    "recheck_evidence",
    "verify_evidence",
    "with_evidence",
]


async def _missing(store: S3Store, url: S3Url, version: str | None) -> Evidence:
    """Nothing at the key: say whether the version the service wrote survives."""
    if version is not None:
        try:
            await store.head(url, version)
        except (AccessError, ServiceError):
            pass  # gone too, or not to be asked (no s3:GetObjectVersion): no more to say
        else:
            return Evidence(
                "missing",
                version_id=version,
                message=f"{url} was deleted; the version the service wrote still exists",
            )
    return Evidence("missing", message=f"no object at {url}")


async def _check(store: S3Store, image: Image) -> Evidence:
    if not image.s3_bucket or not image.s3_name:  # parse_result refuses these; be sure
        return Evidence("error", message="the service named no S3 bucket and key")
    url = S3Url(image.s3_bucket, image.s3_name)
    try:
        info = await store.head(url)
    except NotFoundError:
        return await _missing(store, url, image.s3_version)
    except AccessError as exc:
        return Evidence("forbidden", message=f"{url}: {exc}")
    except ServiceError as exc:  # retries exhausted, or an answer S3 should not give
        return Evidence("error", message=f"{url}: {exc}")
    found = Evidence(
        "present",
        size=info.size,
        etag=info.etag,
        version_id=info.version_id,
        last_modified=info.last_modified,
    )
    if image.s3_version is None or info.version_id == image.s3_version:
        return found
    return replace(
        found,
        status="changed",
        message=(
            f"{url} now holds version {info.version_id}; "
            f"the service wrote version {image.s3_version}"
        ),
    )


async def verify_evidence(store: S3Store, result: SessionResult) -> dict[str, Evidence]:
    """Check every S3-stored image of ``result``, concurrently; keyed like the report."""
    stored = [(name, image) for name, image in image_names(result) if image.s3_bucket]
    checks = await asyncio.gather(*(_check(store, image) for _, image in stored))
    return {name: check for (name, _), check in zip(stored, checks, strict=True)}


def evidence_error(evidence: Mapping[str, Evidence]) -> tuple[str, str] | None:
    """The row's error code and message for the worst finding, or None if all is well."""
    worst = {"missing": 0, "changed": 1, "forbidden": 2, "error": 2}
    found = [(worst[e.status], name, e) for name, e in evidence.items() if e.status in worst]
    if not found:
        return None
    rank, name, first = min(found, key=lambda item: item[0])
    code = EVIDENCE_CODES[rank]
    others = len(found) - 1
    more = f" (and {others} more)" if others else ""
    return code, f"{name}: {first.status}: {first.message}{more}"


def with_evidence(outcome: Outcome, evidence: Mapping[str, Evidence]) -> Outcome:
    """``outcome`` with its evidence findings; the worst one becomes the error code.

    A check that could not be made (``error``, ``forbidden``) leaves the session
    unresolved, so the night does not pass unverified and a rerun (after fixing the
    network or the IAM policy) checks it again; missing and changed are definitive.
    """
    problem = evidence_error(evidence)
    if problem is None:
        return replace(outcome, evidence=evidence)
    code, message = problem
    final = outcome.final and all(e.status not in ("error", "forbidden") for e in evidence.values())
    return replace(outcome, evidence=evidence, error_code=code, error_message=message, final=final)


@dataclass(frozen=True, slots=True)
class Recheck:
    """What a later look at the evidence a report recorded found.

    Only ``problems`` are findings about the evidence; the other two say it could not be
    looked at, which is not a sign of change: ``forbidden`` (S3 refused the HEAD, 403: an
    IAM matter) and ``unchecked`` (the HEAD kept failing, throttled, 5xx or network,
    after every attempt of the store's retry policy).
    """

    checked: int
    problems: tuple[str, ...]  # one line per object missing or changed since the audit
    forbidden: tuple[str, ...] = ()  # one line per object S3 refused to show
    unchecked: tuple[str, ...] = ()  # one line per object S3 did not answer for

    @property
    def lines(self) -> tuple[str, ...]:
        return (*self.problems, *self.forbidden, *self.unchecked)


_RECORDED = ("s3_bucket", "s3_name", "evidence", "evidence_version_id", "evidence_etag")
_Item = tuple[str, str, S3Url, str | None, str | None, int | None]


def _recorded(report: Path) -> Iterator[_Item]:
    """(session, image, object, version, etag, size) of every image found present."""
    columns = [
        "session_id",
        "audit_images",
        *(f"reference_{name}" for name in (*_RECORDED, "evidence_size")),
    ]
    for batch in pq.ParquetFile(report).iter_batches(batch_size=1000, columns=columns):
        for row in batch.to_pylist():
            reference = {k.removeprefix("reference_"): v for k, v in row.items()}
            for name, image in named_images(reference, row["audit_images"]):
                if image.get("evidence") in ("present", "changed") and image.get("s3_bucket"):
                    yield (
                        row["session_id"],
                        name,
                        S3Url(image["s3_bucket"], image["s3_name"]),
                        image.get("evidence_version_id"),
                        image.get("evidence_etag"),
                        image.get("evidence_size"),
                    )


async def recheck_evidence(store: S3Store, report: Path, *, concurrency: int = 16) -> Recheck:
    """HEAD again every object the report saw, and say which are gone or differ now.

    The key must still hold what the audit saw: the same version where S3 gave one (in a
    versioned bucket an overwrite or a delete marker shows as another version, or none),
    else the same ETag and size. Throttles, 5xx and network errors are retried by the
    store's retry policy; a 403 or a HEAD that keeps failing is reported as such, never
    as a change.
    """
    gate = asyncio.Semaphore(concurrency)

    async def one(item: _Item) -> tuple[str, str] | None:
        session_id, name, url, version, etag, size = item
        where = f"{session_id} {name}: {url}"
        async with gate:
            try:
                info = await store.head(url)
            except NotFoundError:
                return "problem", f"{where}: missing (deleted since the audit)"
            except AccessError as exc:
                return "forbidden", f"{where}: cannot check: S3 refused access ({exc})"
            except ServiceError as exc:
                return "unchecked", f"{where}: cannot check: S3 kept failing ({exc})"
        if version is not None and info.version_id != version:
            return "problem", f"{where}: changed (version {version} audited, now {info.version_id})"
        if version is None and (info.etag != etag or info.size != size):
            change = f"ETag {etag} -> {info.etag}, {size} -> {info.size} bytes"
            return "problem", f"{where}: changed ({change})"
        return None

    checked = 0
    found: dict[str, list[str]] = {"problem": [], "forbidden": [], "unchecked": []}
    items = _recorded(report)
    try:
        while chunk := list(itertools.islice(items, 1000)):  # bounded: reports are large
            for outcome in await asyncio.gather(*(one(item) for item in chunk)):
                if outcome is not None:
                    found[outcome[0]].append(outcome[1])
            checked += len(chunk)
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise InputError(f"cannot read the evidence columns of {report}: {exc}") from None
    return Recheck(
        checked,
        tuple(found["problem"]),
        forbidden=tuple(found["forbidden"]),
        unchecked=tuple(found["unchecked"]),
    )
