"""``follow sqs://QUEUE_URL``: S3 notifications through SQS (issue 20, "S3 notification mode").

moto's server sends S3 Event Notifications to an SQS queue; the tool's real aioboto3
client receives them, reads the objects, and deletes each message only once its file's
sessions are journaled. EventBridge ``Object Created`` events and a message delivered
twice are handled too.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from batch.emulator import EmulatorThread
from batch.follow.queue import SqsSource, parse_queue
from tests.fakes import VirtualClock
from tests.following import follow_args, put_ids, s3_report, settled_in, stop, wait_until
from tests.helpers import ACCESS_KEY, SECRET_KEY, run_cli, start_cli
from tests.s3server import MotoServer


def _left(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[n]) for n in names)


@pytest.fixture
def notified(s3: MotoServer, buckets: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, str]:
    """A bucket ``inbox`` notifying queue ``ids`` of every object created."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3.url)
    client, sqs = buckets, s3.client("sqs")
    url = sqs.create_queue(QueueName="ids")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    client.put_bucket_notification_configuration(
        Bucket="inbox",
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return client, sqs, url


def test_notified_files_are_captured_and_their_messages_deleted_once_journaled(
    living: EmulatorThread, notified: tuple[Any, Any, str], tmp_path: Path
) -> None:
    client, sqs, url = notified
    report = "s3://audits/audit.parquet"
    proc = start_cli(*follow_args(f"sqs://{url}", report, tmp_path / "state"))
    first = living.create_sessions(4, start_after=0.0, finish_after=0.0)
    put = put_ids(client, "ids/a b.csv", first)  # a key URL-encoded in the notification
    second = living.create_sessions(4, start_after=0.0, finish_after=0.0)
    stored = put_ids(client, "ids/second.csv", second)
    sqs.send_message(  # and an EventBridge "Object Created" event for the same object
        QueueUrl=url,
        MessageBody=json.dumps(
            {
                "detail-type": "Object Created",
                "source": "aws.s3",
                "detail": {
                    "bucket": {"name": "inbox"},
                    "object": {"key": "ids/second.csv", "etag": stored["ETag"].strip('"')},
                },
            }
        ),
    )

    def all_in() -> bool:
        return settled_in(s3_report(client, "audits", "audit.parquet"), first + second)

    wait_until(all_in, proc, "both files captured")
    wait_until(lambda: _left(sqs, url) == 0, proc, "every message deleted")
    code, _, err = stop(proc)

    assert code == 0, err
    asked = living.stats()["by_session"]
    assert all(asked[sid] == 1 for sid in first + second)  # a second notice asks nothing
    assert put["ETag"]


def test_a_queue_that_does_not_exist_is_a_usage_error(
    notified: tuple[Any, Any, str], tmp_path: Path, s3: MotoServer
) -> None:
    _, _, url = notified
    missing = url.rsplit("/", 1)[0] + "/no-such-queue"
    ran = run_cli(
        "follow",
        f"sqs://{missing}",
        "--output",
        tmp_path / "r.parquet",
        "--work-dir",
        tmp_path / "state",
    )
    assert ran.code == 2, ran.stderr
    assert "queue does not exist" in ran.stderr


async def test_a_message_whose_file_is_being_worked_on_stays_invisible_past_its_timeout(
    s3: MotoServer,
) -> None:
    """Visibility is extended while a file is worked on (SQS's timeouts are real time)."""
    sqs = s3.client("sqs")
    url = sqs.create_queue(QueueName="slow")["QueueUrl"]
    body = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {
        "bucket": {"name": "inbox"}, "object": {"key": "ids/big.csv", "eTag": "e1"}}}]}  # fmt: skip
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    clock = VirtualClock()  # the source's clock: when it last extended
    session = aioboto3.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1"
    )
    async with session.client("sqs", endpoint_url=s3.url) as client:
        source = SqsSource(
            client, parse_queue(f"sqs://{url}"), wait_seconds=0, visibility=8, clock=clock.now
        )
        (found,) = await source.ready({})
        # SQS's timeouts are moto's real time; the margins are whole seconds each way so a
        # loaded machine's slow calls do not decide the outcome (4 s and 2 s failed once).
        await asyncio.sleep(4)  # the file takes long: half the 8 s timeout passes
        clock.time = 4.0
        assert await source.ready({found.name: None}) == []  # being asked: extended, not offered
        await asyncio.sleep(6)  # past the first timeout (8 s), well before the new one (12 s)

        assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
        source.done(found)
        await source.flush()
    assert _left(sqs, url) == 0  # deleted once consumed


async def test_a_newer_version_announced_while_the_older_is_worked_on_is_offered_after_it(
    s3: MotoServer,
) -> None:
    """The object is overwritten while its first version is read: the second notification
    is not deleted with the first version's, and the newer version is offered once the
    older one is consumed."""
    sqs = s3.client("sqs")
    url = sqs.create_queue(QueueName="overwritten")["QueueUrl"]

    def announce(etag: str) -> None:
        s3_part = {"bucket": {"name": "inbox"}, "object": {"key": "ids/day.csv", "eTag": etag}}
        body = {"Records": [{"eventName": "ObjectCreated:Put", "s3": s3_part}]}
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))

    session = aioboto3.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name="us-east-1"
    )
    async with session.client("sqs", endpoint_url=s3.url) as client:
        source = SqsSource(client, parse_queue(f"sqs://{url}"), wait_seconds=0, visibility=60)
        announce("e1")
        (older,) = await source.ready({})
        announce("e2")
        assert await source.ready({older.name: None}) == []  # the name is in work
        source.done(older)
        await source.flush()
        assert _left(sqs, url) == 1  # the newer version's message was not deleted

        (newer,) = await source.ready({older.name: "e1"})

    assert (newer.name, newer.identity) == (older.name, "e2")
