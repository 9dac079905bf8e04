"""YahooSource through the real yfinance code, answered offline by recorded Yahoo responses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataprovider.enums import DataResolution
from dataprovider.errors import (
    DataNotFoundError,
    InvalidRequestError,
    RangeNotAvailableError,
    SymbolNotFoundError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from dataprovider.sources.base import Source
from dataprovider.sources.yahoo import LOOKBACK_LIMITS, YahooSource, plan_fetch
from tests.support.yahoo_replay import CHART_URL, YahooReplay, load_recording

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
MSFT = "nyf2_historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"
AAPL_2020 = "nyf2_chart-AAPL-2020-08-31-to-2020-11-07.json"
AAPL_1M = "nyf2_chart-AAPL-2024-10-02-to-2024-10-03-includePrePost-false-interval-1m.json"
AAPL_1M_WEEKEND = "nyf2_chart-AAPL-2025-02-01-to-2025-02-02-includePrePost-false-interval-1m.json"
TSLA_30M = "nyf2_chart-TSLA-2021-11-22-to-2021-11-23-interval-30m.json"

NOW = pd.Timestamp("2024-10-04 12:00", tz="UTC")  # two days after the 1m recording


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def ago(days: int) -> pd.Timestamp:
    return NOW - pd.Timedelta(days=days)


@pytest.fixture
def make_source(make_yahoo_source):
    """A YahooSource on a replay, at a fixed 'now', with a limiter on the fake clock."""

    def make(replay: YahooReplay, now: pd.Timestamp, **kwargs) -> YahooSource:
        return make_yahoo_source(replay, lambda: now, **kwargs)

    return make


def recorded(name: str) -> pd.DataFrame:
    """The recording's bars as Yahoo sent them, indexed by UTC time."""
    rec = load_recording(name)
    indicators = rec.result["indicators"]
    frame = pd.DataFrame(indicators["quote"][0], index=rec.timestamps)
    if "adjclose" in indicators:
        frame["adjclose"] = indicators["adjclose"][0]["adjclose"]
    return frame


def day_index(name: str) -> pd.DatetimeIndex:
    """The recording's daily bar times as the canonical frame indexes them (local midnight)."""
    rec = load_recording(name)
    return rec.timestamps.tz_convert(rec.timezone).normalize()


def test_is_a_source(make_source):
    source = make_source(YahooReplay(), utc("2024-01-01"))
    assert isinstance(source, Source)
    assert source.name == "yahoo"


@pytest.mark.parametrize(
    ("name", "timezone"),
    [
        (NVDA, "America/New_York"),
        (MSFT, "America/New_York"),
        ("yfrs_history_chart_AAPL.json", "America/New_York"),
        ("nyf2_chart-BTC-USD-2020-01-01-to-2020-01-03.json", "UTC"),
        ("nyf2_chart-EURUSD=X-2020-01-01-to-2020-01-03.json", "Europe/London"),
        ("nyf2_chart-GC=F-2020-01-01-to-2020-01-03.json", "America/New_York"),
        ("nyf2_chart-WSU.DE-2023-08-04-to-2023-08-09.json", "Europe/Berlin"),
        ("yfrs_history_chart_GS2C.DE.json", "Europe/Berlin"),
        ("nyf2_chart-0P000071W8.TO-2020-01-01-to-2020-01-03.json", "America/Toronto"),
    ],
)
def test_daily_full_history_is_one_request_of_adjusted_canonical_bars(make_source, name, timezone):
    replay = YahooReplay(name)
    rec = load_recording(name)
    source = make_source(replay, now=rec.timestamps[-1] + pd.Timedelta(days=3))

    result = source.fetch(rec.symbol, DataResolution.DAY_01, None, None)

    assert replay.fetch_count(rec.symbol) == 1
    assert result.timezone == timezone
    assert result.available_from is None
    frame = result.frame
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert frame.index.name == "Date"
    assert str(frame.index.dtype) == f"datetime64[ns, {timezone}]"
    assert frame.index.equals(day_index(name))
    raw = recorded(name)
    factor = raw["adjclose"] / raw["close"]  # auto_adjust: OHLC scaled to the dividend-adjusted close
    np.testing.assert_allclose(frame["Close"], raw["adjclose"], rtol=1e-12)
    np.testing.assert_allclose(frame["Open"], raw["open"] * factor, rtol=1e-12)
    assert frame["Volume"].dtype == "int64"
    assert (frame["Volume"].to_numpy() == raw["volume"].to_numpy()).all()


def test_range_is_restricted_to_start_inclusive_end_exclusive(make_source):
    replay = YahooReplay(MSFT)
    source = make_source(replay, now=utc("2022-06-01"))
    start, end = utc("2021-03-01"), utc("2021-06-01")

    frame = source.fetch("MSFT", "1d", start, end).frame

    expected = day_index(MSFT)
    expected = expected[(expected >= start) & (expected < end)]
    assert frame.index.equals(expected)
    assert frame.index[0].date().isoformat() == "2021-03-01"


def test_exchange_local_bounds_keep_the_first_day_east_of_utc(make_source):
    replay = YahooReplay("nyf2_chart-WSU.DE-2023-08-04-to-2023-08-09.json")
    source = make_source(replay, now=utc("2023-09-01"))
    berlin = "Europe/Berlin"

    frame = source.fetch(
        "WSU.DE", "1d", pd.Timestamp("2023-08-04", tz=berlin), pd.Timestamp("2023-08-09", tz=berlin)
    ).frame

    assert [d.date().isoformat() for d in frame.index] == ["2023-08-04", "2023-08-07", "2023-08-08"]


def test_splits_and_dividends_come_back_as_corporate_actions(make_source):
    replay = YahooReplay(AAPL_2020)
    source = make_source(replay, now=utc("2021-01-01"))

    actions = source.fetch("AAPL", "1d", None, None).corporate_actions

    # The recording holds AAPL's 4:1 split of 2020-08-31 and its 0.205 dividend of 2020-11-06.
    assert list(actions.columns) == ["Dividends", "Stock Splits"]
    assert actions.index.equals(pd.DatetimeIndex(["2020-08-31", "2020-11-06"]).tz_localize("America/New_York"))
    assert actions["Stock Splits"].tolist() == [4.0, 0.0]
    assert actions["Dividends"].tolist() == [0.0, 0.205]


def test_corporate_actions_only_cover_the_requested_range(make_source):
    replay = YahooReplay(MSFT)
    source = make_source(replay, now=utc("2022-06-01"))
    start, end = utc("2021-03-01"), utc("2021-12-01")

    actions = source.fetch("MSFT", "1d", start, end).corporate_actions

    events = load_recording(MSFT).result["events"]["dividends"].values()
    inside = {
        pd.Timestamp(e["date"], unit="s", tz="UTC").tz_convert("America/New_York").normalize(): e["amount"]
        for e in events
        if start <= pd.Timestamp(e["date"], unit="s", tz="UTC") < end
    }
    assert actions["Dividends"].to_dict() == inside
    assert (actions["Stock Splits"] == 0).all()


def test_no_actions_gives_an_empty_frame_with_the_action_columns(make_source):
    replay = YahooReplay("nyf2_chart-BTC-USD-2020-01-01-to-2020-01-03.json")
    actions = make_source(replay, now=utc("2020-02-01")).fetch("BTC-USD", "1d", None, None).corporate_actions
    assert actions.empty
    assert list(actions.columns) == ["Dividends", "Stock Splits"]
    assert str(actions.index.dtype) == "datetime64[ns, UTC]"


def test_1m_bars_drop_the_null_bar_and_the_trailing_bar_past_the_period(make_source):
    replay = YahooReplay(AAPL_1M)
    source = make_source(replay, now=NOW)
    start, end = utc("2024-10-02"), utc("2024-10-03")

    result = source.fetch("AAPL", "1m", start, end)

    frame = result.frame
    raw = recorded(AAPL_1M)
    session = raw[(raw.index >= start) & (raw.index < end)]
    assert len(session) == 390 and session["close"].isna().sum() == 1  # README: one all-null minute
    assert frame.index.equals(session.index[session["close"].notna()].tz_convert("America/New_York"))
    assert frame.index.name == "Datetime"
    assert utc("2024-10-02 15:15") not in frame.index
    assert frame.index.max() < end
    np.testing.assert_allclose(frame["Close"], session["close"].dropna(), rtol=1e-12)
    assert ago(30) < result.available_from < ago(29)


def test_1m_is_fetched_in_requests_of_at_most_7_days_over_the_last_30(make_source):
    replay = YahooReplay(AAPL_1M)
    source = make_source(replay, now=NOW)

    result = source.fetch("AAPL", "1m", None, None)

    fetches = [r for r in replay.requests_for("AAPL") if r.is_fetch]
    assert len(fetches) == replay.fetch_count("AAPL") == 5
    spans = [(int(r.params["period1"]), int(r.params["period2"])) for r in fetches]
    assert spans[0][0] == int(result.available_from.timestamp())
    assert spans[-1][1] == int(NOW.timestamp())
    assert all(b - a <= 7 * 86400 for a, b in spans)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(spans, spans[1:], strict=False))
    assert len(result.frame) == 389  # the recorded session minutes, without the null one


def test_intraday_start_before_the_window_is_clipped_to_it(make_source):
    replay = YahooReplay(AAPL_1M)
    source = make_source(replay, now=NOW)

    result = source.fetch("AAPL", "1m", ago(45), utc("2024-10-03"))

    first = replay.requests_for("AAPL")[-replay.fetch_count("AAPL")]
    assert int(first.params["period1"]) == int(result.available_from.timestamp())
    assert len(result.frame) == 389


def test_range_older_than_the_window_raises_without_asking_yahoo(make_source):
    replay = YahooReplay(AAPL_1M)
    source = make_source(replay, now=NOW)

    with pytest.raises(RangeNotAvailableError) as info:
        source.fetch("AAPL", "1m", ago(60), ago(45))

    assert "last 30 days" in info.value.message
    assert info.value.details["limit_days"] == 30
    assert replay.requests == []


def test_30m_bars_are_the_regular_session_of_the_recording(make_source):
    # yfinance asks Yahoo for 15m bars when asked for 30m and resamples them to 30m.
    replay = YahooReplay()
    replay.add(TSLA_30M, interval="15m")
    source = make_source(replay, now=utc("2021-11-24"))

    frame = source.fetch("TSLA", "30m", utc("2021-11-22"), utc("2021-11-23")).frame

    raw = recorded(TSLA_30M)
    regular = load_recording(TSLA_30M).result["meta"]["tradingPeriods"]["regular"][0][0]
    regular = raw[
        (raw.index >= pd.Timestamp(regular["start"], unit="s", tz="UTC"))
        & (raw.index < pd.Timestamp(regular["end"], unit="s", tz="UTC"))
    ]
    assert frame.index.equals(regular.index.tz_convert("America/New_York"))
    np.testing.assert_allclose(frame["Close"], regular["close"], rtol=1e-12)
    assert (frame["Volume"].to_numpy() == regular["volume"].to_numpy()).all()


@pytest.mark.parametrize(
    ("name", "resolution", "start", "end", "now"),
    [
        (AAPL_1M_WEEKEND, "1m", "2025-02-01", "2025-02-02", "2025-02-03"),  # recorded empty answer
        (NVDA, "1d", "2021-07-03", "2021-07-05", "2022-06-01"),  # a weekend in a daily recording
        ("nyf2_chart-TSLA-2021-11-23-to-2021-11-23-interval-1h.json", "1h", "2021-11-23", "2021-11-24", "2021-12-01"),
    ],
)
def test_a_range_without_bars_is_an_empty_frame_not_an_error(make_source, name, resolution, start, end, now):
    replay = YahooReplay(name)
    symbol = load_recording(name).symbol

    result = make_source(replay, now=utc(now)).fetch(symbol, resolution, utc(start), utc(end))

    assert result.frame.empty
    assert result.timezone == "America/New_York"
    assert str(result.frame.index.dtype) == "datetime64[ns, America/New_York]"
    assert result.frame["Volume"].dtype == "int64"
    assert result.corporate_actions.empty
    assert replay.fetch_count(symbol) == 1


def test_empty_switch_gives_an_empty_frame(make_source):
    replay = YahooReplay(NVDA)
    replay.empty = True
    result = make_source(replay, now=utc("2022-06-01")).fetch("NVDA", "1d", None, None)
    assert result.frame.empty and result.timezone == "America/New_York"


@pytest.mark.parametrize("attempt", range(3))
def test_unknown_symbol_is_symbol_not_found(make_source, attempt):
    # yfinance looks the timezone up twice per process (chart probe, then quoteSummary)
    # and then only probes the chart; every path must end in SymbolNotFoundError.
    replay = YahooReplay()
    replay.add_unknown("ZZZZNOTREAL")

    with pytest.raises(SymbolNotFoundError) as info:
        make_source(replay, now=utc("2024-01-01")).fetch("ZZZZNOTREAL", "1d", None, None)

    assert isinstance(info.value, KeyError)
    assert "ZZZZNOTREAL" in info.value.message
    assert info.value.ticker == "ZZZZNOTREAL"
    assert replay.fetch_count("ZZZZNOTREAL") == 0  # it failed at the timezone lookup


def test_chart_404_for_a_symbol_with_a_known_timezone_is_symbol_not_found(make_source):
    replay = YahooReplay(NVDA)
    source = make_source(replay, now=utc("2022-06-01"))
    source.fetch("NVDA", "1d", None, None)  # yfinance now has NVDA's timezone cached
    replay.add_unknown("NVDA")
    sent = len(replay.requests)

    with pytest.raises(SymbolNotFoundError):
        source.fetch("NVDA", "1d", None, None)

    later = replay.requests[sent:]
    assert later and all(r.is_fetch for r in later)  # no timezone probe: the bars request answered 404


def test_unreachable_network_is_upstream_unavailable_then_fails_fast(make_source, clock):
    replay = YahooReplay(NVDA)
    source = make_source(replay, now=utc("2022-06-01"))
    replay.unreachable = True

    with pytest.raises(UpstreamUnavailableError) as info:
        source.fetch("NVDA", "1d", None, None)
    assert not isinstance(info.value, DataNotFoundError)
    assert "local_only=True" in info.value.message
    assert "Network is unreachable" in info.value.message

    sent = len(replay.requests)
    with pytest.raises(UpstreamUnavailableError) as info:
        source.fetch("MSFT", "1d", None, None)
    assert len(replay.requests) == sent  # the cool-down answered, not the network
    assert info.value.details["retry_after"] == 15

    replay.unreachable = False
    clock.advance(15)
    assert len(source.fetch("NVDA", "1d", None, None).frame) == 252


def test_slow_answer_is_upstream_timeout(make_source, clock):
    replay = YahooReplay(NVDA)
    source = make_source(replay, now=utc("2022-06-01"), timeout=2.0)
    replay.latency = 5.0

    with pytest.raises(UpstreamTimeoutError) as info:
        source.fetch("NVDA", "1d", None, None)

    assert isinstance(info.value, TimeoutError)
    assert "2 s" in info.value.message
    assert replay.requests[-1].timeout == 2.0  # the source's timeout reached the request
    clock.advance(15)
    replay.latency = 1.5
    assert len(source.fetch("NVDA", "1d", None, None).frame) == 252


def test_http_429_backs_off_exponentially_and_fails_fast_meanwhile(make_source, clock):
    replay = YahooReplay(NVDA)
    source = make_source(replay, now=utc("2022-06-01"))
    replay.rate_limited = True

    with pytest.raises(UpstreamRateLimitedError) as info:
        source.fetch("NVDA", "1d", None, None)
    assert info.value.details["retry_after"] == 30
    assert "local_only=True" in info.value.message

    sent = len(replay.requests)
    with pytest.raises(UpstreamRateLimitedError):
        source.fetch("NVDA", "1d", None, None)
    assert len(replay.requests) == sent

    clock.advance(30)
    with pytest.raises(UpstreamRateLimitedError) as info:
        source.fetch("NVDA", "1d", None, None)
    assert info.value.details["retry_after"] == 60

    clock.advance(60)
    replay.rate_limited = False
    assert len(source.fetch("NVDA", "1d", None, None).frame) == 252


def test_yahoo_outage_page_is_upstream_unavailable(make_source):
    replay = YahooReplay(NVDA)
    # Registered later, so it wins over the replay's chart answers. A reconstruction of
    # Yahoo's outage page, not a recording.
    replay.adapter.register_uri("GET", CHART_URL, status_code=503, text="<html>Will be right back...</html>")

    with pytest.raises(UpstreamUnavailableError) as info:
        make_source(replay, now=utc("2022-06-01")).fetch("NVDA", "1d", None, None)

    assert not isinstance(info.value, DataNotFoundError)
    assert "outage page" in info.value.message


def test_invalid_ticker_is_refused_before_any_request(make_source):
    replay = YahooReplay()
    with pytest.raises(InvalidRequestError) as info:
        make_source(replay, now=utc("2024-01-01")).fetch("../etc", "1d", None, None)
    assert info.value.code == "INVALID_TICKER"
    assert replay.requests == []


# -- plan_fetch: the pure planning ------------------------------------------------------


@pytest.mark.parametrize(
    ("resolution", "days"), [("1m", 30), ("2m", 60), ("5m", 60), ("15m", 60), ("30m", 60), ("1h", 730)]
)
def test_plan_starts_intraday_history_inside_yahoos_lookback(resolution, days):
    resolution = DataResolution.parse(resolution)
    plan = plan_fetch(resolution, None, None, NOW)
    assert LOOKBACK_LIMITS[resolution] == pd.Timedelta(days=days)
    assert NOW - pd.Timedelta(days=days) < plan.available_from < NOW - pd.Timedelta(days=days - 1)
    assert plan.windows[0][0] == plan.available_from
    assert plan.windows[-1][1] == NOW


def test_plan_cuts_1m_into_contiguous_spans_of_at_most_7_days():
    plan = plan_fetch(DataResolution.MINUTE_01, NOW - pd.Timedelta(days=20), NOW, NOW)
    assert [b - a for a, b in plan.windows] == [pd.Timedelta(days=7), pd.Timedelta(days=7), pd.Timedelta(days=6)]
    assert all(w[1] == nxt[0] for w, nxt in zip(plan.windows, plan.windows[1:], strict=False))


def test_plan_does_not_ask_for_intraday_bars_after_now():
    plan = plan_fetch(DataResolution.MINUTE_01, NOW - pd.Timedelta(days=1), NOW + pd.Timedelta(days=30), NOW)
    assert plan.windows == ((NOW - pd.Timedelta(days=1), NOW),)


def test_plan_keeps_a_daily_request_whole_and_unbounded():
    plan = plan_fetch(DataResolution.DAY_01, None, None, NOW)
    assert plan.windows == ((None, NOW),)
    assert plan.available_from is None
    plan = plan_fetch(DataResolution.WEEK_01, utc("1990-01-01"), utc("2000-01-01"), NOW)
    assert plan.windows == ((utc("1990-01-01"), utc("2000-01-01")),)


def test_plan_refuses_an_empty_or_reversed_range():
    with pytest.raises(InvalidRequestError) as info:
        plan_fetch(DataResolution.DAY_01, NOW, NOW, NOW)
    assert info.value.code == "INVALID_TIME_RANGE"


def test_plan_refuses_a_range_entirely_before_the_lookback():
    with pytest.raises(RangeNotAvailableError) as info:
        plan_fetch(DataResolution.HOUR_01, utc("2020-01-01"), utc("2020-02-01"), NOW)
    assert "last 730 days" in info.value.message
    assert "'1d'" in info.value.message
