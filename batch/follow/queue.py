"""S3 notifications from SQS: ``follow sqs://QUEUE_URL``.

S3 Event Notifications (``ObjectCreated:*`` records) or EventBridge ``Object Created``
events delivered to an SQS queue name each new ID file. :class:`SqsSource` receives them
(long polling), offers each object as a :class:`~batch.follow.source.Found` (name
``s3://bucket/key``, identity its ETag), and deletes a message only once every file it
names is consumed, that is once every session in it has a journaled (fsync'd) answer: at
least once, never lost. While a file is worked on, its message's visibility is extended,
so another consumer does not take it meanwhile. Several ``follow`` processes may share
one queue (each with its ``--quota-share``): SQS hands each message to one of them, and a
message delivered twice names a file already consumed, which is deleted unread.

Deletions are made at the next poll (and when the service stops): a message is never
deleted before its file's answers are on disk, at worst a little after. A message that
announces a newer version (another ETag) of a file being worked on is held apart (kept
invisible, never deleted with the older version's): once that is consumed, the message
is made visible again, and the newer version is offered when it comes back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import aioboto3

from batch.aws.convert import convert_error
from batch.aws.session import client_config
from batch.config import Settings
from batch.errors import ConfigError, InputError, SessionError
from batch.follow.source import Found, Taken, _changed, _taken
from batch.logs import LOGGER, event
from batch.store.locations import S3Url

__all__ = ["SQS_RETENTION", "SqsQueue", "SqsSource", "open_queue", "parse_queue"]

log = logging.getLogger(LOGGER)

VISIBILITY = 120  # s a received message stays invisible; extended at half of it
SQS_RETENTION = 15 * 86_400.0  # s: SQS keeps a message 14 days at most; a day's margin
_BATCH = 10  # messages per receive and per delete (SQS's maximum)


@dataclass(frozen=True, slots=True)
class SqsQueue:
    """``sqs://QUEUE_URL``: the queue's URL (``https://`` unless given with its scheme)."""

    url: str

    def __str__(self) -> str:
        return f"sqs://{self.url.split('://', 1)[1]}"


def parse_queue(text: str) -> SqsQueue:
    """``sqs://sqs.REGION.amazonaws.com/ACCOUNT/NAME`` (or ``sqs://http://...``)."""
    rest = text.removeprefix("sqs://")
    if "://" not in rest:
        rest = f"https://{rest}"
    if rest.count("/") < 4 or rest.endswith("/"):
        raise ConfigError(
            f"invalid SOURCE {text!r}: give the queue's URL, e.g. "
            "sqs://sqs.us-east-1.amazonaws.com/123456789012/liveness-ids"
        )
    return SqsQueue(rest)


@dataclass
class _Message:
    receipt: str
    names: set[str]  # files it names not consumed yet
    extended: float  # monotonic time of its last visibility change
    held: bool = False  # it also announces a newer version of a file in work: kept


@dataclass
class _Pending:
    found: Found
    messages: list[_Message] = field(default_factory=list)


def _records(body: str) -> list[tuple[str, str, str]] | None:
    """(bucket, key, etag) of each object a message body announces; [] for a test event;
    None when the body is no S3 or EventBridge object event."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("Event") == "s3:TestEvent":
        return []
    if data.get("detail-type") == "Object Created":
        return _eventbridge(data)
    records = data.get("Records")
    if not isinstance(records, list):
        return None
    found = []
    for record in records:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if not str(record.get("eventName", "")).startswith("ObjectCreated") or not s3:
            continue
        key = unquote_plus(str(s3["object"]["key"]))  # notification keys are URL-encoded
        found.append((str(s3["bucket"]["name"]), key, str(s3["object"].get("eTag") or "")))
    return found


def _eventbridge(data: dict[str, Any]) -> list[tuple[str, str, str]] | None:
    """The object of an EventBridge ``Object Created`` event (its key is not encoded)."""
    detail = data.get("detail") or {}
    obj, bucket = detail.get("object") or {}, detail.get("bucket") or {}
    if "key" in obj and "name" in bucket:
        return [(str(bucket["name"]), str(obj["key"]), str(obj.get("etag") or ""))]
    return None


class SqsSource:
    """New ID files as S3 notifications in an SQS queue (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        queue: SqsQueue,
        *,
        wait_seconds: float = 5.0,
        visibility: int = VISIBILITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.queue = queue
        self._wait = max(0, min(20, int(wait_seconds)))
        self.visibility = visibility
        self._clock = clock
        self._open: dict[str, _Pending] = {}  # s3://bucket/key -> its file and messages
        self._deletable: list[str] = []  # receipts whose files are all consumed
        self._newer: dict[str, list[_Message]] = {}  # name in work -> a newer version's
        self._released: list[str] = []  # receipts to make visible again at the next poll

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = await getattr(self._client, operation)(
                QueueUrl=self.queue.url, **params
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # converted at this one boundary
            raise convert_error(exc) from exc
        return answer

    async def check(self) -> None:
        """InputError (exit 2) when the queue does not exist; AccessError (3) when refused."""
        try:
            await self._call("get_queue_attributes", AttributeNames=["QueueArn"])
        except SessionError as exc:
            if "NonExistentQueue" in exc.code or "QueueDoesNotExist" in exc.code:
                raise InputError(f"SOURCE queue does not exist: {self.queue.url}") from None
            raise

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(0 if self._wait else seconds)  # ready() long-polls

    async def ready(self, consumed: Taken) -> list[Found]:
        """Delete what is done, extend what is worked on, receive new messages; the files
        announced and not consumed as they are now, oldest first."""
        taken = _taken(consumed)
        await self.flush()
        await self._extend()
        answer = await self._call(
            "receive_message",
            MaxNumberOfMessages=_BATCH,
            WaitTimeSeconds=self._wait,
            VisibilityTimeout=self.visibility,
        )
        for message in answer.get("Messages", []):
            self._receive(message, taken)
        return sorted(
            (
                p.found
                for name, p in self._open.items()
                if _changed(taken, name, p.found.identity or "") is not False
            ),
            key=lambda f: f.order,
        )

    def _receive(self, message: dict[str, Any], taken: dict[str, str | None]) -> None:
        receipt = str(message["ReceiptHandle"])
        records = _records(str(message.get("Body", "")))
        if records is None:
            log.warning(
                "message %s on %s is no S3 object event: deleted",
                message.get("MessageId"),
                self.queue,
                extra=event("rejected", file=str(message.get("MessageId")), reason="no event"),
            )
        entry = _Message(receipt, set(), self._clock())
        for bucket, key, etag in records or []:
            name = f"s3://{bucket}/{key}"
            if key.endswith("/"):
                continue  # a folder marker
            pending = self._open.get(name)
            if pending is not None and etag and pending.found.identity not in (None, etag):
                self._newer.setdefault(name, []).append(entry)  # not the version in work
                entry.held = True
                continue
            if pending is None:
                if name in taken and taken[name] in (None, etag):
                    continue  # delivered again: consumed already
                found = Found(name, S3Url(bucket, key), (time.time(), name), etag)
                pending = self._open[name] = _Pending(found)
            pending.messages.append(entry)
            entry.names.add(name)
        if not entry.names and not entry.held:
            self._deletable.append(receipt)

    def done(self, found: Found) -> str | None:
        """``found`` is consumed: its messages are deleted (at the next poll) once every
        file they name is."""
        pending = self._open.pop(found.name, None)
        self._released += [m.receipt for m in self._newer.pop(found.name, [])]
        for message in pending.messages if pending is not None else []:
            message.names.discard(found.name)
            if not message.names and not message.held:
                self._deletable.append(message.receipt)
        return None

    def _held_messages(self) -> Iterator[_Message]:
        """The messages of files in work, and those of newer versions held apart (kept
        invisible too: they are not received again meanwhile)."""
        for pending in self._open.values():
            yield from pending.messages
        for newer in self._newer.values():
            yield from newer

    async def _extend(self) -> None:
        """Keep the messages of files still worked on invisible to other consumers."""
        now = self._clock()
        due = {id(m): m for m in self._held_messages() if now - m.extended >= self.visibility / 2}
        for message in due.values():
            await self._call(
                "change_message_visibility",
                ReceiptHandle=message.receipt,
                VisibilityTimeout=self.visibility,
            )
            message.extended = now

    async def flush(self) -> None:
        """Delete the messages whose files are all consumed; make those of a newer version
        of a consumed file visible again, to be received (and offered) anew."""
        while self._released:
            receipt = self._released.pop()
            try:
                await self._call(
                    "change_message_visibility", ReceiptHandle=receipt, VisibilityTimeout=0
                )
            except SessionError as exc:  # its visibility ran out: it comes back anyway
                log.info("message not made visible again on %s: %s", self.queue, exc)
        while self._deletable:
            batch, self._deletable = self._deletable[:_BATCH], self._deletable[_BATCH:]
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(batch)]
            answer = await self._call("delete_message_batch", Entries=entries)
            failed = answer.get("Failed") or []
            if failed:  # e.g. a receipt that expired: the message comes back, is deduped
                log.info("%d messages not deleted on %s: %s", len(failed), self.queue, failed)

    def close(self) -> None:
        return None


@asynccontextmanager
async def open_queue(
    session: aioboto3.Session, settings: Settings, queue: SqsQueue
) -> AsyncIterator[SqsSource]:
    """The SQS source on the run's session (``AWS_ENDPOINT_URL_SQS`` is honoured)."""
    async with session.client("sqs", config=client_config(settings, pool=4)) as client:
        yield SqsSource(client, queue, wait_seconds=settings.poll_interval)
