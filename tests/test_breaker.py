"""The breaker: a run whose endpoint fails every call stops early; answers reset it."""

from __future__ import annotations

from batch.engine.stops import Breaker, Stop
from batch.errors import (
    AccessError,
    ServerError,
    SessionError,
    ThrottledError,
    TransportError,
)


def server_error() -> ServerError:
    return ServerError("InternalServerError", "boom")


def test_the_run_stops_after_threshold_failures_in_a_row() -> None:
    stop = Stop()
    breaker = Breaker(3, stop)
    breaker.record(server_error())
    breaker.record(TransportError("ConnectionError", "reset"))
    assert not stop
    breaker.record(server_error())
    assert stop
    assert stop.reason is not None
    assert "failed 3 calls in a row (last: InternalServerError)" in stop.reason


def test_an_answer_resets_the_streak() -> None:
    stop = Stop()
    breaker = Breaker(3, stop)
    for outcome in (server_error(), server_error(), None, server_error(), server_error()):
        breaker.record(outcome)
    assert breaker.streak == 2
    assert not stop


def test_throttles_and_per_session_errors_show_the_endpoint_alive() -> None:
    stop = Stop()
    breaker = Breaker(2, stop)
    alive = (
        ThrottledError("ThrottlingException", ""),
        SessionError("SessionNotFoundException", ""),
    )
    for error in alive:
        breaker.record(server_error())
        breaker.record(error)
    assert breaker.streak == 0
    assert not stop


def test_an_error_without_a_code_is_named_by_its_type() -> None:
    stop = Stop()
    Breaker(1, stop).record(RuntimeError("odd"))
    assert stop.reason is not None
    assert "(last: RuntimeError)" in stop.reason


def test_the_first_stop_reason_is_kept() -> None:
    stop = Stop()
    stop.request("SIGTERM")
    breaker = Breaker(1, stop)
    breaker.record(AccessError("denied"))
    assert stop.reason == "SIGTERM"
