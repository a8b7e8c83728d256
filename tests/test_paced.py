"""The paced call: attempts under a limiter and a retry policy, with plain fakes passed in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from batch.aws.paced import NotSent, PacedCall
from batch.errors import AccessError, ServerError, SessionError, ThrottledError, TransportError
from batch.pacing.retry import RetryPolicy
from tests.fakes import FakeLimiter


def policy(attempts: int = 5) -> RetryPolicy:
    return RetryPolicy(on=(ServerError, ThrottledError), attempts=attempts, wait_initial=0)


def scripted(*answers: BaseException | str) -> tuple[Callable[[], Awaitable[str]], list[int]]:
    """A request that raises or returns ``answers`` in turn; the list counts its calls."""
    calls: list[int] = []

    async def request() -> str:
        calls.append(len(calls) + 1)
        answer = answers[len(calls) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return request, calls


async def test_a_throttle_tells_the_limiter_and_the_call_is_retried() -> None:
    limiter = FakeLimiter()
    cuts: list[int] = []
    seen: list[BaseException | None] = []
    paced = PacedCall(limiter, policy(), on_attempt=seen.append, on_cut=lambda: cuts.append(1))
    request, calls = scripted(ThrottledError("ThrottlingException", "slow down"), "answer")

    assert await paced(request) == "answer"

    assert calls == [1, 2]
    assert limiter.turns == 2  # the retry waited for a turn of its own
    assert limiter.throttles == [1.0]  # the throttled attempt's own release time
    assert limiter.successes == [2.0]
    assert cuts == [1]
    assert [type(e) for e in seen] == [ThrottledError, type(None)]


async def test_a_throttle_that_does_not_cut_the_rate_is_not_announced() -> None:
    cuts: list[int] = []
    paced = PacedCall(FakeLimiter(cuts=False), policy(), on_cut=lambda: cuts.append(1))
    request, _ = scripted(ThrottledError("ThrottlingException", ""), "answer")

    assert await paced(request) == "answer"
    assert cuts == []


@pytest.mark.parametrize(
    "error",
    [SessionError("SessionNotFoundException", "no such session"), AccessError("denied")],
)
async def test_an_error_that_is_not_retryable_is_raised_at_once(error: Exception) -> None:
    limiter = FakeLimiter()
    paced = PacedCall(limiter, policy())
    request, calls = scripted(error, "never reached")

    with pytest.raises(type(error)) as raised:
        await paced(request)

    assert raised.value is error
    assert calls == [1]
    assert limiter.throttles == []
    assert limiter.successes == []


async def test_a_stopping_run_gives_up_retrying() -> None:
    attempts: list[int] = []

    async def request() -> str:
        attempts.append(1)  # the run is asked to stop while this attempt is out
        raise ServerError("InternalServerError", "boom")

    paced = PacedCall(FakeLimiter(), policy(), give_up=lambda: bool(attempts))
    with pytest.raises(ServerError):
        await paced(request)
    assert len(attempts) == 1


async def test_an_unstoppable_call_keeps_retrying_while_the_run_stops() -> None:
    paced = PacedCall(FakeLimiter(), policy(), give_up=lambda: True)
    request, calls = scripted(ServerError("InternalServerError", ""), "uploaded")

    assert await paced(request, stoppable=False) == "uploaded"
    assert calls == [1, 2]


async def test_when_attempts_run_out_the_last_error_itself_is_raised() -> None:
    errors = [ServerError("InternalServerError", f"attempt {n}") for n in (1, 2, 3)]
    paced = PacedCall(FakeLimiter(), policy(attempts=3))
    request, calls = scripted(*errors)

    with pytest.raises(ServerError) as raised:
        await paced(request)

    assert raised.value is errors[-1]  # not wrapped, not a copy
    assert calls == [1, 2, 3]


async def test_a_foreign_error_leaves_converted_with_the_original_as_its_cause() -> None:
    original = ConnectionResetError("reset by peer")
    paced = PacedCall(FakeLimiter(), policy(attempts=1))
    request, _ = scripted(original)

    with pytest.raises(TransportError) as raised:
        await paced(request)

    assert raised.value.code == "ConnectionError"
    assert raised.value.__cause__ is original


async def test_an_unknown_exception_type_is_raised_as_the_bug_it_is() -> None:
    seen: list[BaseException | None] = []
    paced = PacedCall(FakeLimiter(), policy(), on_attempt=seen.append)
    request, calls = scripted(KeyError("bug"))

    with pytest.raises(KeyError):
        await paced(request)
    assert calls == [1]
    assert seen == []


class Held:
    """A limiter whose turns never come until ``release``; counts turns given back."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.given_back = 0

    async def __aenter__(self) -> float:
        await self.open.wait()
        return 0.0

    async def __aexit__(self, *exc_info: object) -> None:
        self.given_back += 1

    def throttled(self, sent_at: float | None = None) -> bool:
        return False

    def succeeded(self, sent_at: float | None = None) -> None:
        return None


async def test_requests_waiting_for_their_turn_when_the_run_stops_end_at_once_unsent() -> None:
    stopping, limiter = asyncio.Event(), Held()
    paced = PacedCall(limiter, policy(), stopping=stopping)
    request, calls = scripted(*["sent"] * 5)
    waiting = [asyncio.create_task(paced(request)) for _ in range(5)]
    await asyncio.sleep(0)  # all five wait for a turn that never comes
    stopping.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, NotSent) for r in results), results
    assert calls == []
    assert limiter.given_back == 0  # no turn was taken, none is given back


async def test_a_turn_that_comes_with_the_stop_is_given_back_and_nothing_is_sent() -> None:
    stopping, limiter = asyncio.Event(), Held()
    paced = PacedCall(limiter, policy(), stopping=stopping)
    request, calls = scripted("sent")
    call = asyncio.create_task(paced(request))
    await asyncio.sleep(0)
    limiter.open.set()  # the turn and the stop in the same moment
    stopping.set()
    with pytest.raises(NotSent):
        await call
    assert calls == []


async def test_a_waiting_request_cancelled_from_outside_is_cancelled_not_unsent() -> None:
    stopping, limiter = asyncio.Event(), Held()
    paced = PacedCall(limiter, policy(), stopping=stopping)
    request, _ = scripted("sent")
    call = asyncio.create_task(paced(request))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    stopping.set()  # the stop afterwards finds nothing waiting
    await asyncio.sleep(0)


async def test_after_the_stop_a_new_request_is_not_sent_and_an_unstoppable_one_is() -> None:
    stopping = asyncio.Event()
    stopping.set()
    paced = PacedCall(FakeLimiter(), policy(), stopping=stopping)
    request, calls = scripted("uploaded")
    with pytest.raises(NotSent):
        await paced(request)
    assert await paced(request, stoppable=False) == "uploaded"
    assert calls == [1]
