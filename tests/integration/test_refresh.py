"""The cache kept in line with Yahoo: initial download, incremental tail, history, splits, failures.

Yahoo is the offline replay (real yfinance code on recorded responses); time is a settable clock.
"""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import (
    NoDataError,
    SymbolNotFoundError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from dataprovider.protocol.query import BarsQuery, TimeBound
from tests.conftest import Now
from tests.support.yahoo_replay import YahooReplay

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
MSFT = "nyf2_historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"
D1 = DataResolution.DAY_01


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def world(tmp_path, make_yahoo_source):
    """A replay of NVDA and MSFT, a settable clock, and a service over an empty cache."""
    replay = YahooReplay(NVDA, MSFT)
    now = Now(utc("2021-07-01 22:00"))
    source = make_yahoo_source(replay, now)
    service = DataService(DeltaStore(tmp_path / "cache"), source, clock=now)

    class World:
        pass

    w = World()
    w.replay, w.now, w.source, w.service = replay, now, source, service

    def travel(when: str | None) -> None:
        """Move the clock and make Yahoo answer as it would have then (None: as recorded)."""
        w.now.value = utc(when or "2022-02-01")
        replay.as_of(None if when is None else w.now.value)

    w.travel = travel
    travel("2021-07-01 22:00")
    yield w
    service.close()


def fresh_download(make_yahoo_source, ticker: str, start: str, as_of: str | None = None) -> pd.DataFrame:
    """What a new cache would hold: a download from Yahoo as it answered at ``as_of`` (None: as recorded)."""
    replay = YahooReplay(NVDA, MSFT)
    replay.as_of(None if as_of is None else utc(as_of))
    source = make_yahoo_source(replay, Now(utc(as_of or "2022-02-01")))
    return source.fetch(ticker, D1, utc(start), None).frame


def period_starts(replay: YahooReplay, ticker: str) -> list[pd.Timestamp]:
    fetches = [r for r in replay.requests_for(ticker) if r.is_fetch]
    return [pd.Timestamp(int(r.params["period1"]), unit="s", tz="UTC") for r in fetches]


def test_first_request_downloads_and_caches(world):
    result = world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_03, local_only=False))
    assert result.source == "yahoo" and not result.stale
    assert result.frame.index[-1] == pd.Timestamp("2021-07-01", tz="America/New_York")
    assert result.frame.index[0] > pd.Timestamp("2021-04-01", tz="America/New_York")
    info = world.service.store.info("NVDA", D1)
    assert info.meta.timezone == "America/New_York" and info.meta.last_fetched == world.now.value
    # Asking again at once is answered from the cache.
    again = world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_03, local_only=False))
    pd.testing.assert_frame_equal(again.frame, result.frame)
    assert world.replay.fetch_count("NVDA") == 1


def test_update_downloads_only_the_tail(world, make_yahoo_source):
    world.service.get_bars(BarsQuery("MSFT", D1, DataPeriod.YEAR_01, local_only=False))
    cached_last = world.service.store.info("MSFT", D1).last
    world.travel("2021-07-16 22:00")  # two weeks later, no dividend in between
    result = world.service.get_bars(BarsQuery("MSFT", D1, DataPeriod.YEAR_01, local_only=False))
    starts = period_starts(world.replay, "MSFT")
    assert len(starts) == 2
    assert cached_last - pd.Timedelta(days=10) <= starts[1] <= cached_last  # a few bars of overlap only
    assert result.frame.index[-1] == pd.Timestamp("2021-07-16", tz="America/New_York")
    cached = world.service.get_bars(BarsQuery("MSFT", D1, DataPeriod.YEAR_MAX, local_only=True)).frame
    pd.testing.assert_frame_equal(cached, fresh_download(make_yahoo_source, "MSFT", "1990-01-01", "2021-07-16 22:00"))


def test_cache_built_before_a_split_matches_a_fresh_download_after_it(world, make_yahoo_source):
    before = world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.YEAR_MAX, local_only=False)).frame
    world.travel(None)  # 2022-02-01: the 4:1 split of 2021-07-20 has happened
    after = world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.YEAR_MAX, local_only=False)).frame
    fresh = fresh_download(make_yahoo_source, "NVDA", "1990-01-01")
    pd.testing.assert_frame_equal(after, fresh)
    day = pd.Timestamp("2021-06-30", tz="America/New_York")
    # Before the split Yahoo quoted pre-split prices (dividends since move them by well under 1%).
    assert before.loc[day, "Close"] == pytest.approx(4 * after.loc[day, "Close"], rel=1e-2)


def test_dividend_after_the_cache_readjusts_history(world, make_yahoo_source):
    world.service.get_bars(BarsQuery("MSFT", D1, DataPeriod.YEAR_MAX, local_only=False))
    world.travel(None)  # dividends on 2021-08-18 and 2021-11-17 since
    after = world.service.get_bars(BarsQuery("MSFT", D1, DataPeriod.YEAR_MAX, local_only=False)).frame
    pd.testing.assert_frame_equal(after, fresh_download(make_yahoo_source, "MSFT", "1990-01-01"))


def test_still_forming_bar_is_refreshed_not_kept(world):
    world.travel("2021-07-01 17:00")  # 13:00 in New York: the session of 07-01 is open
    world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_01, local_only=False))
    info = world.service.store.info("NVDA", D1)
    assert info.meta.forming_from == utc("2021-07-01 04:00")  # New York midnight of 07-01
    world.travel("2021-07-02 17:00")
    world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_01, local_only=False))
    assert period_starts(world.replay, "NVDA")[-1] <= utc("2021-07-01 04:00")
    assert world.service.store.info("NVDA", D1).meta.forming_from == utc("2021-07-02 04:00")


def test_older_history_is_fetched_once_and_only_the_missing_part(world):
    start = TimeBound.parse("2021-06-01")
    world.service.get_bars(BarsQuery("NVDA", D1, time_start=start, local_only=False))
    coverage = world.service.store.info("NVDA", D1).meta.coverage_start
    older = world.service.get_bars(BarsQuery("NVDA", D1, time_start=TimeBound.parse("2021-03-01"), local_only=False))
    assert older.frame.index[0] == pd.Timestamp("2021-03-01", tz="America/New_York")
    head = [r for r in world.replay.requests_for("NVDA") if r.is_fetch][-1]
    assert pd.Timestamp(int(head.params["period2"]), unit="s", tz="UTC") <= coverage + pd.Timedelta(days=1)
    count = world.replay.fetch_count("NVDA")
    world.service.get_bars(BarsQuery("NVDA", D1, time_start=TimeBound.parse("2021-03-01"), local_only=False))
    assert world.replay.fetch_count("NVDA") == count


def test_concurrent_requests_for_missing_data_cause_one_download(world):
    results, barrier = [], threading.Barrier(8)

    def ask():
        barrier.wait()
        results.append(world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_06, local_only=False)).frame)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert world.replay.fetch_count("NVDA") == 1
    assert len(results) == 8 and all(frame.equals(results[0]) for frame in results)


def test_unreachable_upstream_serves_cache_marked_stale(world):
    world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_01, local_only=False))
    world.travel("2021-07-16 22:00")
    world.replay.unreachable = True
    result = world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_01, local_only=False))
    assert result.stale and result.warnings[0].startswith("UPSTREAM_UNAVAILABLE")
    assert result.frame.index[-1] == pd.Timestamp("2021-07-01", tz="America/New_York")
    with pytest.raises(UpstreamUnavailableError):
        world.service.get_bars(BarsQuery("MSFT", D1, DataPeriod.MONTH_01, local_only=False))  # nothing cached
    assert world.service.store.info("MSFT", D1) is None and not (world.service.store.root / "1d" / "MSFT").exists()


def test_rate_limit_is_reported_and_shared(world):
    world.replay.rate_limited = True
    with pytest.raises(UpstreamRateLimitedError) as caught:
        world.service.get_bars(BarsQuery("NVDA", D1, local_only=False))
    assert caught.value.details["retry_after"] > 0
    asked = len(world.replay.requests)
    with pytest.raises(UpstreamRateLimitedError):
        world.service.get_bars(BarsQuery("MSFT", D1, local_only=False))  # backing off: Yahoo is not asked again
    assert len(world.replay.requests) == asked


def test_unknown_symbol_and_empty_answers_write_nothing(world):
    world.replay.add_unknown("ZZZZ")
    with pytest.raises(SymbolNotFoundError):
        world.service.get_bars(BarsQuery("ZZZZ", D1, local_only=False))
    world.replay.empty = True
    with pytest.raises(NoDataError):
        world.service.get_bars(BarsQuery("NVDA", D1, local_only=False))
    assert world.service.store.list_datasets() == []


def test_stale_results_stay_flagged_while_the_upstream_is_down(world):
    world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_01, local_only=False))
    world.travel("2021-07-16 22:00")
    world.replay.unreachable = True
    first = world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_01, local_only=False))
    asked = len(world.replay.requests)
    second = world.service.get_bars(BarsQuery("NVDA", D1, DataPeriod.MONTH_01, local_only=False))
    assert first.stale and second.stale  # the second fails fast (cool-down) but is still flagged
    assert len(world.replay.requests) == asked


def test_intraday_history_is_limited_to_what_yahoo_keeps(tmp_path, make_yahoo_source):
    """1m bars exist for the last 30 days only: the window is clipped once, then served from the cache."""
    replay = YahooReplay("nyf2_chart-AAPL-2024-10-02-to-2024-10-03-includePrePost-false-interval-1m.json")
    now = Now(utc("2024-10-04 12:00"))
    service = DataService(DeltaStore(tmp_path), make_yahoo_source(replay, now), clock=now)
    statuses = []
    result = service.get_bars(
        BarsQuery("AAPL", DataResolution.MINUTE_01, DataPeriod.MONTH_01, local_only=False),
        lambda state, detail: statuses.append((state, detail.get("part"))),
    )
    assert len(result.frame) == 389 and str(result.frame.index.tz) == "America/New_York"
    assert result.frame.index[-1] == pd.Timestamp("2024-10-02 15:59", tz="America/New_York")
    spans = [(int(r.params["period1"]), int(r.params["period2"])) for r in replay.requests_for("AAPL") if r.is_fetch]
    assert all(end - start <= 7 * 86400 for start, end in spans)  # chunked by Yahoo's 7-day limit
    assert service.store.info("AAPL", DataResolution.MINUTE_01).meta.history_complete
    asked = replay.fetch_count("AAPL")
    now.value = utc("2024-10-04 12:00:30")
    statuses.clear()
    service.get_bars(
        BarsQuery("AAPL", DataResolution.MINUTE_01, DataPeriod.MONTH_01, local_only=False),
        lambda state, detail: statuses.append((state, detail.get("part"))),
    )
    assert replay.fetch_count("AAPL") == asked and statuses == [("cached", None)]
    service.close()
