"""One session through the fetcher, on a plain fake client and limiter (no network)."""

from __future__ import annotations

import pytest

from batch.aws.paced import PacedCall
from batch.aws.session import retry_policy
from batch.config import Settings
from batch.engine.fetch import Fetcher
from batch.errors import CredentialsError, ServerError, SessionError
from batch.model import SessionResult, Status
from tests.fakes import FakeLimiter


class FakeClient:
    """Answers each ``get`` with the next scripted error or a SUCCEEDED result."""

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.calls = 0

    async def get(self, session_id: str) -> SessionResult:
        self.calls += 1
        error = self.script.pop(0) if self.script else None
        if error is not None:
            raise error
        return SessionResult(session_id, Status.SUCCEEDED, 99.0, None, ())


def fetcher(client: FakeClient, attempts: int = 10) -> Fetcher:
    policy = retry_policy(Settings(max_attempts=attempts, backoff_initial=0, backoff_max=0))
    return Fetcher(client, PacedCall(FakeLimiter(), policy))


def expired() -> CredentialsError:
    return CredentialsError("ExpiredTokenException: expired", code="ExpiredTokenException")


async def test_an_answer_after_retries_counts_its_attempts() -> None:
    client = FakeClient(ServerError("InternalServerError", ""), None)
    outcome = await fetcher(client).fetch("s1")
    assert outcome.result is not None
    assert outcome.attempts == 2
    assert outcome.final


async def test_a_per_session_error_is_a_final_outcome_not_an_exception() -> None:
    client = FakeClient(SessionError("SessionNotFoundException", "gone"))
    outcome = await fetcher(client).fetch("s1")
    assert outcome.error_code == "SessionNotFoundException"
    assert outcome.final
    assert client.calls == 1


async def test_retries_running_out_leave_the_session_unresolved() -> None:
    client = FakeClient(*[ServerError("InternalServerError", "")] * 3)
    outcome = await fetcher(client, attempts=3).fetch("s1")
    assert outcome.error_code == "InternalServerError"
    assert not outcome.final
    assert outcome.attempts == 3


async def test_an_expired_token_is_retried_a_few_times_in_a_row_then_stops_the_run() -> None:
    tolerance = Fetcher.expired_tolerance
    client = FakeClient(*[expired()] * (tolerance + 1))
    with pytest.raises(CredentialsError):
        await fetcher(client).fetch("s1")
    assert client.calls == tolerance + 1


async def test_an_answer_resets_the_count_of_expired_tokens() -> None:
    tolerance = Fetcher.expired_tolerance
    client = FakeClient(*[expired()] * tolerance, None, *[expired()] * tolerance, None)
    shared = fetcher(client)
    assert (await shared.fetch("s1")).result is not None
    assert (await shared.fetch("s2")).result is not None
