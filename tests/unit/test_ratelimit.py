"""The shared token bucket and back-off, on a fake clock (no test waits)."""

from __future__ import annotations

import pytest

from dataprovider.errors import UpstreamRateLimitedError, UpstreamUnavailableError
from dataprovider.sources.ratelimit import RateLimiter
from tests.support.clock import FakeClock


def make(clock: FakeClock, **kwargs) -> RateLimiter:
    return RateLimiter(clock=clock, sleep=clock.sleep, **kwargs)


def test_burst_goes_at_once_then_requests_are_paced_at_the_rate(clock):
    limiter = make(clock, rate=2, burst=5)
    for _ in range(5):
        limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    limiter.acquire()
    assert clock.sleeps == [0.5, 0.5]


def test_waiting_callers_queue_behind_each_other(clock):
    waits = []  # recorded without moving the clock: all callers arrive at once
    limiter = RateLimiter(rate=2, burst=1, clock=clock, sleep=waits.append)
    for _ in range(4):
        limiter.acquire()
    assert waits == [0.5, 1.0, 1.5]


def test_idle_time_refills_the_bucket_up_to_burst_only(clock):
    limiter = make(clock, rate=2, burst=3)
    for _ in range(3):
        limiter.acquire()
    clock.advance(3600)
    for _ in range(3):
        limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [0.5]


def test_429_backs_off_every_caller_until_it_ends(clock):
    limiter = make(clock, backoff=30)
    assert limiter.report_rate_limited() == 30
    with pytest.raises(UpstreamRateLimitedError) as info:
        limiter.acquire("SPY")
    assert info.value.details["retry_after"] == 30
    assert info.value.ticker == "SPY"
    assert "local_only=True" in info.value.message
    clock.advance(29)
    with pytest.raises(UpstreamRateLimitedError) as info:
        limiter.acquire()
    assert info.value.details["retry_after"] == 1
    clock.advance(1)
    limiter.acquire()
    assert limiter.retry_after() == 0


def test_429s_in_a_row_double_the_backoff_up_to_the_cap_and_a_success_resets_it(clock):
    limiter = make(clock, backoff=30, max_backoff=100)
    backoffs = []
    for _ in range(4):  # each 429 answers a request sent after the previous back-off ended
        backoffs.append(limiter.report_rate_limited())
        clock.advance(backoffs[-1])
    assert backoffs == [30, 60, 100, 100]
    limiter.report_success()
    assert limiter.report_rate_limited() == 30


def test_unreachable_source_fails_fast_for_the_cooldown(clock):
    limiter = make(clock, cooldown=15)
    assert limiter.report_unavailable("connection refused") == 15
    with pytest.raises(UpstreamUnavailableError) as info:
        limiter.acquire()
    assert "connection refused" in info.value.message
    assert info.value.details["retry_after"] == 15
    clock.advance(15)
    limiter.acquire()


def test_cooldown_never_shortens_a_429_backoff(clock):
    limiter = make(clock, backoff=60, cooldown=15)
    limiter.report_rate_limited()
    assert limiter.report_unavailable("timed out") == 60
    clock.advance(20)
    with pytest.raises(UpstreamRateLimitedError):
        limiter.acquire()


def test_backoff_that_starts_while_a_caller_waits_for_a_token_stops_it(clock):
    def sleep_while_another_thread_gets_429(seconds):
        clock.sleep(seconds)
        limiter.report_rate_limited()

    limiter = RateLimiter(rate=1, burst=1, clock=clock, sleep=sleep_while_another_thread_gets_429)
    limiter.acquire()
    with pytest.raises(UpstreamRateLimitedError):
        limiter.acquire()


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"burst": 0}])
def test_rejects_a_bucket_that_never_fills(kwargs):
    with pytest.raises(ValueError, match="rate must be > 0"):
        RateLimiter(**kwargs)
