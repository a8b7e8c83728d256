"""Counting and showing progress: the tally, the summary line, log lines and the bar."""

from __future__ import annotations

import io

from rich.console import Console

from batch.durations import format_duration
from batch.engine.progress import BarDisplay, LogDisplay, Tally, summary_line
from batch.errors import ServerError, SessionError, ThrottledError
from batch.model import Outcome, SessionResult, Status


def result(status: str) -> SessionResult:
    return SessionResult("s", Status(status), None, None, ())


def filled() -> Tally:
    tally = Tally(total=10, rate_now=lambda: 42.0)
    for error in (None, ThrottledError("ThrottlingException", ""), ServerError("X", ""), None):
        tally.attempt(error)
    tally.finished(Outcome.answered(result("SUCCEEDED"), 1))
    tally.finished(Outcome.answered(result("FAILED"), 3))
    tally.finished(Outcome.failed("t", SessionError("SessionNotFoundException", ""), 1))
    tally.finished(Outcome.failed("u", ServerError("InternalServerError", ""), 10))
    tally.replayed("EXPIRED", None)
    return tally


def test_tally_counts_what_happened() -> None:
    t = filled()
    assert (t.requests, t.throttles, t.failures) == (4, 1, 1)
    assert (t.done, t.unresolved, t.resumed) == (5, 1, 1)
    assert t.by_status == {"SUCCEEDED": 1, "FAILED": 1, "EXPIRED": 1}
    assert t.by_error == {"SessionNotFoundException": 1, "InternalServerError": 1}


def test_summary_line_has_counts_time_and_rate() -> None:
    line = summary_line(filled(), wall=2.0)
    assert line.startswith("5 sessions | status: EXPIRED 1, FAILED 1, SUCCEEDED 1 | errors: ")
    assert "InternalServerError 1, SessionNotFoundException 1" in line
    assert "4 requests in 2.0s (2.0 req/s), 1 throttled, 1 failed attempts" in line
    assert line.endswith("1 resumed from the checkpoint")


def test_log_line_shows_rate_throttles_limiter_and_eta() -> None:
    line = LogDisplay(filled(), interval=10).line(elapsed=5.0)
    assert line == ("progress: 5/10 sessions (50%), 0.8 req/s, 1 throttled, limiter 42.0/s, eta 5s")


def test_durations_read_well() -> None:
    assert [format_duration(s) for s in (0.4, 59, 61, 3725)] == ["0s", "59s", "1m01s", "1h02m05s"]


async def test_bar_renders_on_a_terminal() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160)
    async with BarDisplay(filled(), console=console).running():
        pass
    text = screen.getvalue()
    assert "auditing" in text
    assert "5/10" in text
    assert "1 throttled" in text
    assert "limiter 42.0/s" in text
