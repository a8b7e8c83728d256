"""The per-session client does once what botocore would redo per request (shape, not timing).

A real aioboto3 client against the emulator over loopback HTTP; the requests are watched
through the client's own ``before-send`` event, the public hook botocore offers.
"""

from __future__ import annotations

from typing import Any

import botocore
import pytest

from batch.aws.rekognition import open_client
from batch.aws.session import USER_AGENT
from batch.config import Settings
from batch.emulator import EmulatorThread
from batch.errors import ServerError, SessionError

GET = "GetFaceLivenessSessionResults"


def sent_headers(client: Any) -> list[str]:
    """User-Agent of every request ``client`` sends from now on, as it goes on the wire."""
    seen: list[str] = []

    def watch(request: Any, **_: object) -> None:
        seen.append(request.headers["User-Agent"].decode())

    client.meta.events.register(f"before-send.rekognition.{GET}", watch)
    return seen


async def test_every_request_carries_the_user_agent_built_once_at_start_up(
    emulator: EmulatorThread,
) -> None:
    ids = emulator.population.ids()[:3]
    async with open_client(Settings()) as liveness:
        client = liveness._client  # the aioboto3 client inside, to watch what it sends
        seen = sent_headers(client)
        for sid in ids:
            await liveness.get(sid)
    assert seen == [f"{USER_AGENT} botocore/{botocore.__version__}"] * len(ids)
    assert "liveness-audit/" in seen[0]


async def test_no_retry_handler_is_left_and_a_server_error_is_sent_once(
    emulator: EmulatorThread,
) -> None:
    sid = emulator.population.ids()[0]
    emulator.script(sid, ["server_error"])
    async with open_client(Settings()) as liveness:
        client = liveness._client
        seen = sent_headers(client)
        with pytest.raises(ServerError):
            await liveness.get(sid)
        answers = await client.meta.events.emit(
            f"needs-retry.rekognition.{GET}",
            response=None,
            endpoint=None,
            operation=None,
            attempts=1,
            caught_exception=None,
            request_dict={"context": {}},
        )
    assert answers == []  # nobody decides on retries inside botocore: the policy does
    assert len(seen) == 1  # and botocore sent the failing request once


async def test_botocore_does_not_validate_the_session_id_again_the_service_answers_it(
    emulator: EmulatorThread,
) -> None:
    """The input reader validates IDs; botocore's second check would refuse this one
    locally (ParamValidationError, nothing sent)."""
    async with open_client(Settings()) as liveness:
        seen = sent_headers(liveness._client)
        with pytest.raises(SessionError) as caught:
            await liveness.get("too-short")
    assert caught.value.code == "InvalidParameterException"
    assert len(seen) == 1
