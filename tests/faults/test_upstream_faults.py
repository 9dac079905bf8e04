"""Yahoo unreachable, rate limiting, stalled or answering without bars, as a client of a running server sees it.

Each fault gives its own error code (never a client-side REQUEST_TIMEOUT), cached
data is still served (marked stale), nothing is written for data that did not
come, and the shared back-off keeps a burst of further requests from reaching
Yahoo at all.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from dataprovider import DataProviderLocal
from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.sources.ratelimit import RateLimiter
from dataprovider.sources.yahoo import YahooSource
from tests.conftest import Now
from tests.support.clock import FakeClock
from tests.support.yahoo_replay import YahooReplay

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
MSFT = "nyf2_historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"
OTHERS = {
    "AAPL": "nyf2_chart-AAPL-2020-08-31-to-2020-11-07.json",
    "BTC-USD": "nyf2_chart-BTC-USD-2020-01-01-to-2020-01-03.json",
    "EURUSD=X": "nyf2_chart-EURUSD=X-2020-01-01-to-2020-01-03.json",
    "GC=F": "nyf2_chart-GC=F-2020-01-01-to-2020-01-03.json",
    "WSU.DE": "nyf2_chart-WSU.DE-2023-08-04-to-2023-08-09.json",
}
#: Far longer than any timeout yfinance or the source sets: every request stalls until its timeout.
STALL = 1000.0


class CountingReplay(YahooReplay):
    """The replay, also recording every HTTP request it gets (cookies and crumbs too) with its timeout.

    Given a fake ``clock``, a stalled request moves it on by the time the request would have waited.
    """

    def __init__(self, *recordings: str, clock: FakeClock | None = None) -> None:
        super().__init__(*recordings)
        self.sent: list[tuple[str, float | None]] = []
        answer = self.adapter.send

        def send(request, **kwargs):
            timeout = kwargs.get("timeout")
            self.sent.append((request.url, timeout))
            if clock is not None and self.latency and timeout is not None:
                clock.advance(min(timeout, self.latency))
            return answer(request, **kwargs)

        self.adapter.send = send


@dataclass
class World:
    replay: CountingReplay
    now: Now
    provider: DataProviderLocal
    data_dir: Path


@pytest.fixture
def world(live_server, make_yahoo_source, clock) -> World:
    """A server whose cache holds NVDA from 2021-07-01, asked two weeks later (NVDA is behind, nothing else cached)."""
    replay = CountingReplay(NVDA, MSFT, *OTHERS.values(), clock=clock)
    now = Now(pd.Timestamp("2021-07-01 22:00", tz="UTC"))
    replay.as_of(now.value)
    server = live_server(make_yahoo_source(replay, now), samples=False, clock=now)
    provider = server.client(timeout=20)
    assert provider.get_data_socket("NVDA", period="3mo", local_only=False) is not None
    now.value = pd.Timestamp("2021-07-16 22:00", tz="UTC")
    replay.as_of(now.value)
    return World(replay, now, provider, server.store.root)


def assert_only_nvda_cached(data_dir: Path) -> None:
    """The daily folder holds NVDA's table and nothing else: no table, nor a data file, for the others."""
    assert sorted(p.name for p in (data_dir / "1d").iterdir()) == ["NVDA"]
    assert [(i.ticker, i.path) for i in DeltaStore(data_dir).list_datasets()] == [("NVDA", data_dir / "1d" / "NVDA")]


def default_of(cls: type, parameter: str):
    """The default value of one of ``cls``'s constructor parameters."""
    return inspect.signature(cls).parameters[parameter].default


def ask(provider: DataProviderLocal, ticker: str) -> tuple[pd.DataFrame | None, dict]:
    """One request's frame and what came with it (the summary, or the error payload)."""
    seen: dict = {}
    frame = provider.get_data_socket(
        ticker, period="3mo", local_only=False, callback=seen.update, error_callback=seen.update
    )
    return frame, seen


#: fault -> (switch on the replay, code of the failed download, code while backing off afterwards).
#: After a timeout the source is not asked for a while, as after a refused connection.
FAULTS = {
    "unreachable": ("unreachable", True, "UPSTREAM_UNAVAILABLE", "UPSTREAM_UNAVAILABLE"),
    "rate-limited": ("rate_limited", True, "UPSTREAM_RATE_LIMITED", "UPSTREAM_RATE_LIMITED"),
    "stalled": ("latency", STALL, "UPSTREAM_TIMEOUT", "UPSTREAM_UNAVAILABLE"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_an_upstream_fault_is_reported_cached_data_served_and_the_burst_held_back(world, fault):
    switch, value, code, backing_off = FAULTS[fault]
    setattr(world.replay, switch, value)
    stale, seen = ask(world.provider, "NVDA")
    assert stale is not None and seen["stale"] and seen["warnings"][0].startswith(code)
    assert stale.index[-1] == pd.Timestamp("2021-07-01", tz="America/New_York")

    asked = len(world.replay.sent)
    errors: list[dict] = []
    frames = world.provider.get_batch_data_socket(
        ["MSFT", *OTHERS], period="3mo", local_only=False, progress=False, error_callback=errors.append
    )
    assert frames == {} and {e["code"] for e in errors} == {backing_off} and len(errors) == 1 + len(OTHERS)
    assert all(e["details"]["retry_after"] > 0 for e in errors)
    assert len(world.replay.sent) == asked  # the back-off answered them all: Yahoo was not asked
    assert_only_nvda_cached(world.data_dir)


def test_answers_without_bars_write_nothing_and_back_nothing_off(world):
    world.replay.empty = True
    fresh, seen = ask(world.provider, "NVDA")  # Yahoo answered: nothing newer, the cache is up to date
    assert not seen["stale"] and fresh.index[-1] == pd.Timestamp("2021-07-01", tz="America/New_York")
    errors: list[dict] = []
    frames = world.provider.get_batch_data_socket(
        ["MSFT", *OTHERS], period="3mo", local_only=False, progress=False, error_callback=errors.append
    )
    assert frames == {} and {e["code"] for e in errors} == {"NO_DATA"}
    assert {r.symbol for r in world.replay.requests if r.is_fetch} == {"NVDA", "MSFT", *OTHERS}
    assert_only_nvda_cached(world.data_dir)


def test_a_rate_limited_batch_does_not_storm_yahoo(live_server, make_yahoo_source):
    """Yahoo answers 429 from the first request of a batch on: only the tickers already under way reach it.

    (yfinance sends a request answered 429 once more before giving up.)
    """
    replay = CountingReplay(NVDA, MSFT, *OTHERS.values())
    replay.rate_limited = True
    now = Now(pd.Timestamp("2022-02-01", tz="UTC"))
    server = live_server(make_yahoo_source(replay, now), samples=False, clock=now)
    errors: list[dict] = []
    tickers = ["NVDA", "MSFT", *OTHERS]
    server.client(timeout=10).get_batch_data_socket(
        tickers, local_only=False, progress=False, error_callback=errors.append
    )
    assert [e["code"] for e in errors] == ["UPSTREAM_RATE_LIMITED"] * len(tickers)
    workers = default_of(DataService, "batch_workers")
    assert len({r.symbol for r in replay.requests}) <= workers < len(tickers)
    assert len(replay.requests) <= 2 * workers


def test_requests_under_way_when_a_429_comes_do_not_lengthen_the_back_off(clock):
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(4):  # four workers take a slot and send their request at once
        limiter.acquire()
    first = limiter.report_rate_limited()
    assert [limiter.report_rate_limited() for _ in range(3)] == [first] * 3
    clock.advance(first)  # the back-off is over: the next 429 is a new one, and doubles it
    assert limiter.report_rate_limited() == 2 * first


def test_a_stalled_yahoo_is_reported_before_the_client_gives_up(world, clock):
    """Cookie, crumb and bars requests all stall: the fetch still ends within its budget."""
    world.replay.latency = STALL
    world.replay.sent.clear()
    started = clock()
    _, seen = ask(world.provider, "MSFT")
    assert seen["code"] == "UPSTREAM_TIMEOUT"
    assert len(world.replay.sent) >= 1
    assert clock() - started <= default_of(YahooSource, "budget") < default_of(DataProviderLocal, "timeout")


def test_the_bars_request_itself_is_bounded_by_the_source_timeout(world):
    world.replay.latency = STALL
    _, seen = ask(world.provider, "MSFT")
    assert seen["code"] == "UPSTREAM_TIMEOUT" and seen["details"]["timeout"] == 10
    assert [r.timeout for r in world.replay.requests_for("MSFT")] == [10]
    assert 10 < world.provider.timeout
