"""The retry policy: what is retried, how often, how long it waits (no real waiting)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch.pacing.retry import RetryPolicy
from tests.fakes import VirtualClock


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


class Script:
    """Fails with the given exceptions in order, then returns 'ok'."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[int] = []

    async def __call__(self, attempt: int) -> str:
        self.calls.append(attempt)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def policy(**kw: object) -> RetryPolicy:
    base: dict[str, object] = {"on": (Flaky,), "attempts": 5, "wait_initial": 0.0}
    base.update(kw)
    return RetryPolicy(**base)  # type: ignore[arg-type]  # test helper, kwargs checked above


async def test_retries_until_success_counting_attempts() -> None:
    fn = Script(Flaky(), Flaky())
    assert await policy().call(fn) == "ok"
    assert fn.calls == [1, 2, 3]


async def test_errors_it_is_not_on_are_raised_at_once() -> None:
    fn = Script(Fatal())
    with pytest.raises(Fatal):
        await policy().call(fn)
    assert fn.calls == [1]


async def test_gives_up_after_attempts_with_the_original_error() -> None:
    last = Flaky("fifth")
    fn = Script(Flaky(), Flaky(), Flaky(), Flaky(), last, Flaky())
    with pytest.raises(Flaky) as caught:
        await policy().call(fn)
    assert caught.value is last
    assert fn.calls == [1, 2, 3, 4, 5]


async def test_backoff_is_exponential_full_jitter_and_capped() -> None:
    clock = VirtualClock()
    fn = Script(*(Flaky() for _ in range(5)))
    p = policy(attempts=6, wait_initial=1.0, wait_max=5.0)
    await p.call(fn, clock=clock, random=lambda: 0.5)
    assert clock.sleeps == pytest.approx([0.5, 1.0, 2.0, 2.5, 2.5])
    assert clock.now() == pytest.approx(8.5)


def test_backoff_without_jitter_and_with_huge_attempt_counts() -> None:
    p = policy(wait_initial=0.25, wait_max=20.0, jitter=False)
    assert [p.backoff(n) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]
    assert p.backoff(10_000) == 20.0


async def test_backoff_switched_off_never_sleeps() -> None:
    clock = VirtualClock()
    await policy().call(Script(Flaky(), Flaky()), clock=clock)
    assert clock.sleeps == []


async def test_timeout_stops_before_a_wait_that_would_overrun() -> None:
    clock = VirtualClock()
    fn = Script(*(Flaky() for _ in range(10)))
    p = policy(attempts=10, wait_initial=1.0, wait_max=1.0, jitter=False, timeout=2.5)
    with pytest.raises(Flaky):
        await p.call(fn, clock=clock)
    assert fn.calls == [1, 2, 3]
    assert clock.sleeps == [1.0, 1.0]


async def test_give_up_stops_retrying_at_once() -> None:
    fn = Script(Flaky(), Flaky())
    with pytest.raises(Flaky):
        await policy().call(fn, give_up=lambda: True)
    assert fn.calls == [1]


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"attempts": 0}, "attempts"),
        ({"timeout": 0}, "timeout"),
        ({"wait_initial": 5.0, "wait_max": 1.0}, "wait_initial"),
        ({"wait_exp_base": 0.5}, "wait_exp_base"),
    ],
)
def test_rejects_bad_arguments_naming_them(kw: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        policy(**kw)


async def test_one_attempt_is_a_single_call_and_its_error() -> None:
    fn = Script(Flaky("only"))
    with pytest.raises(Flaky, match="only"):
        await policy(attempts=1).call(fn)
    assert fn.calls == [1]


async def test_a_wait_that_would_end_exactly_at_the_timeout_is_not_taken() -> None:
    # attempt 1 at 0 s, attempt 2 at 1 s; a second wait would end at 2 s, the timeout:
    # no attempt could start before it, so the error is raised instead of waiting.
    clock = VirtualClock()
    fn = Script(*(Flaky() for _ in range(5)))
    p = policy(attempts=5, wait_initial=1.0, wait_max=1.0, jitter=False, timeout=2.0)
    with pytest.raises(Flaky):
        await p.call(fn, clock=clock)
    assert fn.calls == [1, 2]
    assert clock.now() == 1.0


def test_a_short_timeout_and_a_constant_backoff_are_valid_policies() -> None:
    p = policy(timeout=0.5, wait_initial=0.3, wait_max=1.0, wait_exp_base=1.0, jitter=False)
    assert [p.backoff(n) for n in (1, 2, 50)] == [0.3, 0.3, 0.3]
    slow = policy(wait_initial=1.0, wait_max=10.0, wait_exp_base=1.5, jitter=False)
    assert [slow.backoff(n) for n in (1, 2, 3)] == [1.0, 1.5, 2.25]


@given(
    base=st.floats(min_value=1.0, max_value=1e12),
    initial=st.sampled_from([0.0, 1e-3, 0.2, 1.0]),
    failures=st.integers(min_value=1, max_value=10**9),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_a_wait_is_never_negative_nor_above_the_cap_whatever_the_failure_count(
    base: float, initial: float, failures: int, draw: float
) -> None:
    # Was: 1e6 ** 64 overflowed a float (OverflowError) after 52 failures.
    p = policy(wait_initial=initial, wait_max=30.0, wait_exp_base=base)
    wait = p.backoff(failures, draw)
    assert 0.0 <= wait <= 30.0
    if initial == 0.0:
        assert wait == 0.0


def test_without_a_draw_the_backoff_is_the_top_of_its_jittered_range() -> None:
    p = policy(wait_initial=1.0, wait_max=30.0)
    assert [p.backoff(n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert p.backoff(3, 0.25) == 1.0
