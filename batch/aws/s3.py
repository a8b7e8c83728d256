"""S3 for a run: input downloads, report uploads, evidence HEADs and image writes.

One aioboto3 S3 client per run, on the same AWS session as the Rekognition client (same
credential chain, profile and region), endpoint from ``s3_endpoint_url`` or botocore's own
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``. botocore's retries are off: every call goes
through :class:`S3Store`'s own limiter and retry policy, the same discipline as the
Rekognition calls (``SlowDown`` slows the limiter down as ``ThrottlingException`` does).
Errors leave this module converted by :func:`batch.aws.convert.convert_error`.

Atomicity. An upload is one ``PutObject`` (small files) or a multipart upload completed
only after every part arrived (aborted otherwise): S3 makes the object visible at its key
only when the call that completes it succeeds, so a reader never sees a partial report.
Downloads land in a temporary file renamed into place once complete.

Everything written to S3 asks for server-side encryption (``s3_sse``: ``AES256``, or
``aws:kms`` with ``s3_kms_key_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aioboto3

from batch.aws.paced import PacedCall
from batch.aws.session import client_config, open_session, retry_policy
from batch.config import Settings
from batch.errors import (
    AccessError,
    CredentialsError,
    InputError,
    NotFoundError,
    OutputError,
    ServiceError,
    SessionError,
)
from batch.logs import LOGGER
from batch.pacing.limiter import Limiter
from batch.pacing.retry import RetryPolicy
from batch.store.files import AtomicFile
from batch.store.locations import Location, S3Url

__all__ = ["PART_SIZE", "ObjectInfo", "S3Store", "connect_s3", "local_copy", "open_store"]

log = logging.getLogger(LOGGER)

T = TypeVar("T")

PART_SIZE = 16 * 1024 * 1024  # bytes per multipart part; smaller files go in one PutObject
_CHUNK = 1024 * 1024


_ACTIONS = {  # the IAM action each S3 call needs (what a 403 tells the operator to grant)
    "head_object": "s3:GetObject",
    "get_object": "s3:GetObject",
    "list_objects_v2": "s3:ListBucket",
    "head_bucket": "s3:ListBucket",
    "put_object": "s3:PutObject",
    "create_multipart_upload": "s3:PutObject",
    "upload_part": "s3:PutObject",
    "complete_multipart_upload": "s3:PutObject",
    "abort_multipart_upload": "s3:AbortMultipartUpload",
}


def refused(error: AccessError, operation: str, params: dict[str, Any]) -> AccessError:
    """A 403 from S3 naming the call, the bucket and key, and the IAM action it needs."""
    name = "".join(part.title() for part in operation.split("_"))
    where = f"s3://{params.get('Bucket', '?')}/{params.get('Key', params.get('Prefix', ''))}"
    action = _ACTIONS.get(operation, f"s3:{name}")
    return AccessError(
        f"S3 refused {name} on {where} ({error}); the role needs {action} on it "
        "(see the README's IAM policy)",
        code=error.code,
    )


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a HEAD says about an object."""

    size: int
    etag: str
    version_id: str | None
    last_modified: datetime | None
    sse: str | None


class S3Store:
    """S3 calls under a limiter and a retry policy; errors from :mod:`batch.errors`."""

    def __init__(
        self,
        client: Any,
        limiter: Limiter,
        policy: RetryPolicy,
        *,
        sse: str = "AES256",
        kms_key_id: str | None = None,
        give_up: Callable[[], bool] = lambda: False,
        on_attempt: Callable[[BaseException | None], None] = lambda _: None,
        part_size: int = PART_SIZE,
    ) -> None:
        """``on_attempt(error)`` hears of every attempt (a run's S3 :class:`Breaker`)."""
        if part_size < 5 * 1024 * 1024:
            raise ValueError(f"part_size must be at least 5 MiB (S3's minimum), got {part_size}")
        self.part_size = part_size
        self._client = client
        self._paced = PacedCall(limiter, policy, give_up=give_up, on_attempt=on_attempt)
        self._encryption: dict[str, Any] = {"ServerSideEncryption": sse}
        if kms_key_id is not None:
            self._encryption["SSEKMSKeyId"] = kms_key_id

    async def _attempts(self, request: Callable[[], Awaitable[T]], *, stoppable: bool = True) -> T:
        """``request()`` as a :class:`~batch.aws.paced.PacedCall`.

        ``stoppable`` calls give up retrying once the run is stopping (per-session work:
        evidence, images); the others (the input, the report's upload) never do.
        """
        return await self._paced(request, stoppable=stoppable)

    async def _call(self, operation: str, *, stoppable: bool = True, **params: Any) -> Any:
        method = getattr(self._client, operation)
        try:
            return await self._attempts(lambda: method(**params), stoppable=stoppable)
        except CredentialsError:
            raise
        except AccessError as exc:
            raise refused(exc, operation, params) from None

    async def head(self, url: S3Url, version: str | None = None) -> ObjectInfo:
        """The object at ``url`` (that ``version`` of it, if given); NotFoundError if none."""
        params: dict[str, Any] = {"Bucket": url.bucket, "Key": url.key}
        if version is not None:
            params["VersionId"] = version
        response = await self._call("head_object", **params)
        return ObjectInfo(
            size=int(response.get("ContentLength", 0)),
            etag=str(response.get("ETag", "")).strip('"'),
            version_id=response.get("VersionId"),
            last_modified=response.get("LastModified"),
            sse=response.get("ServerSideEncryption"),
        )

    async def find(self, prefix: S3Url, *, suffix: str = "") -> list[S3Url]:
        """The objects under ``prefix`` whose keys end in ``suffix``, in key order."""
        found: list[S3Url] = []
        params: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.key}
        while True:
            page = await self._call("list_objects_v2", **params)
            found += [
                S3Url(prefix.bucket, item["Key"])
                for item in page.get("Contents", [])
                if item["Key"].endswith(suffix)
            ]
            if not page.get("IsTruncated"):
                return found
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def check_bucket(self, bucket: str) -> None:
        """Fail early when ``bucket`` does not exist (a 403 is left for the upload to tell)."""
        try:
            await self._call("head_bucket", Bucket=bucket)
        except NotFoundError:
            raise OutputError(f"S3 bucket does not exist: {bucket}") from None
        except (AccessError, ServiceError) as exc:
            # A role may write objects without s3:ListBucket; S3 may be down for now. The
            # run goes on: the report is kept locally if the upload fails at the end.
            log.warning("cannot check the S3 bucket %s (%s); going on", bucket, exc)

    async def download(self, url: S3Url, target: Path, *, what: str = "input") -> None:
        """Copy the object at ``url`` to ``target`` (atomically), streaming in chunks.

        ``what`` names the object in errors (``input not found: s3://...``).
        """

        def local(exc: OSError) -> InputError:
            return InputError(f"cannot store the {what} next to {target}: {exc}")

        try:
            atomic = AtomicFile(target, what=what)
        except OutputError as exc:
            raise InputError(str(exc)) from None
        f = atomic.file

        async def request() -> None:
            response = await self._client.get_object(Bucket=url.bucket, Key=url.key)
            try:
                f.seek(0)
                f.truncate()  # a retried download starts over
            except OSError as exc:
                raise local(exc) from None
            async with response["Body"] as body:
                # the network's errors are OSErrors too: only the writes are local
                async for chunk in body.content.iter_chunked(_CHUNK):
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise local(exc) from None

        try:
            await self._attempts(request, stoppable=False)
        except BaseException as exc:
            atomic.discard()
            if isinstance(exc, NotFoundError):
                raise InputError(f"{what} not found: {url}") from None
            if isinstance(exc, AccessError) and not isinstance(exc, CredentialsError):
                raise refused(exc, "get_object", {"Bucket": url.bucket, "Key": url.key}) from None
            raise
        try:
            atomic.commit()
        except OSError as exc:
            raise local(exc) from None

    async def put(
        self, url: S3Url, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> str | None:
        """Write ``data`` at ``url`` (encrypted at rest); the new version, if versioned."""
        response = await self._call(
            "put_object",
            Bucket=url.bucket,
            Key=url.key,
            Body=data,
            ContentType=content_type,
            **self._encryption,
        )
        version: str | None = response.get("VersionId")
        return version

    async def upload(
        self,
        path: Path,
        url: S3Url,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/vnd.apache.parquet",
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str | None:
        """Upload the finished file ``path`` to ``url``; the key shows all of it or nothing.

        ``if_match`` (the ETag the caller read) or ``if_none_match`` (the key must be new)
        make the write conditional: S3 refuses it (:class:`ConflictError`) when another
        writer changed the key meanwhile. Returns the new object's ETag.
        """
        at = {"Bucket": url.bucket, "Key": url.key}
        condition: dict[str, str] = {}
        if if_match is not None:
            condition["IfMatch"] = if_match
        elif if_none_match:
            condition["IfNoneMatch"] = "*"
        extra = {"ContentType": content_type, "Metadata": dict(metadata or {})}
        size = (await asyncio.to_thread(path.stat)).st_size
        if size <= self.part_size:
            body = await asyncio.to_thread(path.read_bytes)
            put = await self._call(
                "put_object",
                stoppable=False,
                Body=body,
                **at,
                **extra,
                **condition,
                **self._encryption,
            )
            return _etag(put)
        return await self._multipart(path, url, extra, condition)

    async def _multipart(
        self, path: Path, url: S3Url, extra: Mapping[str, Any], condition: Mapping[str, str]
    ) -> str | None:
        """``path`` in parts; S3 shows the object only once the upload is completed."""
        at = {"Bucket": url.bucket, "Key": url.key}
        started = await self._call(
            "create_multipart_upload", stoppable=False, **at, **extra, **self._encryption
        )
        upload_id = started["UploadId"]
        try:
            parts = await self._parts(path, at, upload_id)
            try:
                done = await self._call(
                    "complete_multipart_upload",
                    stoppable=False,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **at,
                    **condition,
                )
            except SessionError as exc:
                # A retry after a lost answer finds the upload already completed.
                if exc.code != "NoSuchUpload" or not await self._holds(url, parts):
                    raise
                done = {}
        except BaseException:
            # Nothing appeared at the key; drop the parts so they cost nothing.
            await asyncio.shield(self._abort(url, upload_id))
            raise
        return _etag(done)

    async def _parts(
        self, path: Path, at: Mapping[str, str], upload_id: str
    ) -> list[dict[str, Any]]:
        parts = []
        with path.open("rb") as f:
            number = 1
            while chunk := await asyncio.to_thread(f.read, self.part_size):
                part = await self._call(
                    "upload_part",
                    stoppable=False,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    **at,
                )
                parts.append({"ETag": part["ETag"], "PartNumber": number})
                number += 1
        return parts

    async def _holds(self, url: S3Url, parts: list[dict[str, Any]]) -> bool:
        """Whether ``url`` is the object these parts make (S3's multipart ETag)."""
        digests = b"".join(bytes.fromhex(str(p["ETag"]).strip('"')) for p in parts)
        expected = f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"
        try:
            info = await self.head(url)
        except NotFoundError:
            return False
        return info.etag == expected

    async def _abort(self, url: S3Url, upload_id: str) -> None:
        # Best effort: an S3 lifecycle rule for incomplete uploads cleans up the rest.
        with contextlib.suppress(Exception):
            await self._client.abort_multipart_upload(
                Bucket=url.bucket, Key=url.key, UploadId=upload_id
            )


def _etag(response: Mapping[str, Any]) -> str | None:
    """An ETag as :meth:`S3Store.head` gives it: without S3's quotes."""
    etag = response.get("ETag")
    return None if etag is None else str(etag).strip('"')


@asynccontextmanager
async def connect_s3(
    settings: Settings,
    session: aioboto3.Session | None = None,
    *,
    give_up: Callable[[], bool] = lambda: False,
) -> AsyncIterator[S3Store]:
    """The S3 store of a command: on ``session`` (or a new one), with the run's retry policy."""
    session = session or await open_session(settings)
    async with open_store(settings, session, retry_policy(settings), give_up=give_up) as store:
        yield store


async def local_copy(store: S3Store | None, location: Location, folder: Path, what: str) -> Path:
    """``location`` itself when local, else its copy in ``folder`` (named ``what``)."""
    if isinstance(location, Path):
        return location
    if store is None:
        raise ValueError(f"{what} {location} is in S3 but no S3 store was opened")
    copy = folder / f"{uuid.uuid4().hex[:12]}-{location.name or what}"
    await store.download(location, copy, what=what)
    return copy


@asynccontextmanager
async def open_store(
    settings: Settings,
    session: aioboto3.Session,
    policy: RetryPolicy,
    *,
    give_up: Callable[[], bool] = lambda: False,
    on_attempt: Callable[[BaseException | None], None] = lambda _: None,
) -> AsyncIterator[S3Store]:
    """The run's S3 store on ``session``, paced at ``s3_rate``; ``on_attempt`` as S3Store's."""
    context = session.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        config=client_config(settings, pool=settings.s3_concurrency),
    )
    async with context as client:
        yield S3Store(
            client,
            Limiter(settings.s3_rate),
            policy,
            sse=settings.s3_sse,
            kms_key_id=settings.s3_kms_key_id,
            give_up=give_up,
            on_attempt=on_attempt,
        )
