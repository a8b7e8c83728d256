"""The per-session client does once what botocore would redo per request (shape, not timing).

A real aioboto3 client against the emulator over loopback HTTP; the requests are watched
through the client's own ``before-send`` event, the public hook botocore offers.
"""

from __future__ import annotations

from typing import Any

import botocore
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from batch.aws.rekognition import open_client
from batch.aws.session import USER_AGENT
from batch.aws.signing import LeanSigV4Auth
from batch.config import Settings
from batch.emulator import EmulatorThread
from batch.errors import ServerError, SessionError
from tests.helpers import ACCESS_KEY, SECRET_KEY

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


def signed_requests(client: Any) -> list[Any]:
    """Every request ``client`` sends from now on, as it goes on the wire."""
    seen: list[Any] = []
    client.meta.events.register(
        f"before-send.rekognition.{GET}", lambda request, **_: seen.append(request)
    )
    return seen


def text(value: object) -> str:
    """A header's value as text (the prepared request holds bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def botocore_signature(sent: Any) -> str:
    """The ``Authorization`` botocore's own SigV4 makes of ``sent``: the headers it signed,
    at its timestamp, under the test's credentials."""

    authorization = text(sent.headers["Authorization"])
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {k: text(v) for k, v in sent.headers.items() if k.lower() in signed}
    request = AWSRequest(method=sent.method, url=sent.url, data=sent.body, headers=headers)
    request.context["timestamp"] = headers["X-Amz-Date"]
    stock = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "rekognition", "us-east-1")
    canonical = stock.canonical_request(request)
    signature = stock.signature(stock.string_to_sign(request, canonical), request)
    return str(stock._inject_signature_to_request(request, signature).headers["Authorization"])


async def test_requests_are_signed_exactly_as_botocores_own_sigv4_signs_them(
    emulator: EmulatorThread,
) -> None:
    """The lean signer keeps the day's key and selects the headers once; the signature on
    the wire is the one botocore's SigV4Auth makes of the same request, key for key."""
    ids = emulator.population.ids()[:3]
    LeanSigV4Auth._keys.clear()
    async with open_client(Settings()) as liveness:
        sent = signed_requests(liveness._client)
        for sid in ids:
            await liveness.get(sid)
    assert len(sent) == len(ids)
    assert (
        [name[1:] for name in LeanSigV4Auth._keys]
        == [  # the lean signer signed them
            (text(sent[0].headers["X-Amz-Date"])[:8], "us-east-1", "rekognition")
        ]
    )
    for request in sent:
        wire = text(request.headers["Authorization"])
        assert wire.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
        assert wire == botocore_signature(request)
