"""The offline Yahoo replay: what it answers, and answering 'as of' an earlier date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import requests

from tests.support.yahoo_replay import DATA_DIR, ReplayError, YahooReplay, load_recording

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
MSFT = "nyf2_historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"
AAPL_1M = "nyf2_chart-AAPL-2024-10-02-to-2024-10-03-includePrePost-false-interval-1m.json"
AAPL_1M_WEEKEND = "nyf2_chart-AAPL-2025-02-01-to-2025-02-02-includePrePost-false-interval-1m.json"
CHART = "https://query2.finance.yahoo.com/v8/finance/chart/{}"


def seconds(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


def chart(replay: YahooReplay, symbol: str, timeout: float = 10, **params) -> requests.Response:
    return replay.session.get(CHART.format(symbol), params=params, timeout=timeout)


def result_of(response: requests.Response) -> dict:
    return response.json()["chart"]["result"][0]


def test_loads_raw_bodies_and_both_wrapper_forms():
    raw = load_recording("yfrs_history_chart_GS2C.DE.json")  # the body as received
    pretty = load_recording(NVDA)  # response.bodyJson
    string = load_recording(AAPL_1M)  # response.body, a JSON string
    assert (raw.symbol, raw.interval, raw.timezone, raw.period) == ("GS2C.DE", "1d", "Europe/Berlin", None)
    assert (pretty.symbol, pretty.interval, len(pretty.timestamps)) == ("NVDA", "1d", 252)
    assert (string.symbol, string.interval, len(string.timestamps)) == ("AAPL", "1m", 391)
    assert string.period == (seconds("2024-10-02"), seconds("2024-10-03"))
    assert load_recording(DATA_DIR / NVDA) == pretty


def test_period_request_gets_the_bars_and_events_in_the_period():
    replay = YahooReplay(NVDA)
    start, end = pd.Timestamp("2021-07-01", tz="UTC"), pd.Timestamp("2021-08-01", tz="UTC")
    response = chart(replay, "NVDA", period1=int(start.timestamp()), period2=int(end.timestamp()), interval="1d")

    result = result_of(response)
    stamps = pd.to_datetime(result["timestamp"], unit="s", utc=True)
    recorded = load_recording(NVDA).timestamps
    assert response.status_code == 200
    assert list(stamps) == [t for t in recorded if start <= t < end]
    indicators = result["indicators"]
    assert len(indicators["quote"][0]["close"]) == len(stamps) == len(indicators["adjclose"][0]["adjclose"])
    assert [s["splitRatio"] for s in result["events"]["splits"].values()] == ["4:1"]
    assert replay.fetch_count("NVDA") == 1


def test_period_request_gets_the_recorded_trailing_bar_appended():
    replay = YahooReplay(AAPL_1M)
    period = {"period1": seconds("2024-10-02"), "period2": seconds("2024-10-02 18:00")}
    stamps = result_of(chart(replay, "AAPL", interval="1m", **period))["timestamp"]
    assert stamps[-1] == seconds("2024-10-03 20:00")  # Yahoo's live bar, past the period
    assert all(seconds("2024-10-02") <= t < seconds("2024-10-02 18:00") for t in stamps[:-1])


def test_range_request_gets_the_latest_bar_and_is_not_a_fetch():
    replay = YahooReplay(AAPL_1M)
    result = result_of(chart(replay, "AAPL", range="1d", interval="1d"))
    assert result["timestamp"] == [load_recording(AAPL_1M).result["timestamp"][-1]]
    assert result["meta"]["exchangeTimezoneName"] == "America/New_York"
    assert replay.fetch_count("AAPL") == 0
    assert len(replay.requests_for("AAPL")) == 1


def test_period_without_bars_has_the_form_of_yahoos_empty_answer():
    replay = YahooReplay(NVDA)
    weekend = {"period1": seconds("2021-07-03"), "period2": seconds("2021-07-05")}
    result = result_of(chart(replay, "NVDA", interval="1d", **weekend))
    recorded_empty = load_recording(AAPL_1M_WEEKEND).result
    assert set(result) == set(recorded_empty) == {"meta", "indicators"}
    assert result["indicators"] == recorded_empty["indicators"] == {"quote": [{}]}


def test_unregistered_interval_or_symbol_or_url_fails_loudly():
    replay = YahooReplay(NVDA)
    with pytest.raises(ReplayError, match="no '1m' recording for NVDA"):
        chart(replay, "NVDA", period1=0, period2=1, interval="1m")
    with pytest.raises(ReplayError, match="no recording for MSFT"):
        chart(replay, "MSFT", range="1d", interval="1d")
    with pytest.raises(ReplayError, match="no answer for GET https://example.com/"):
        replay.session.get("https://example.com/")


def test_unregistered_interval_reaches_the_caller_of_yahoo_source_unmapped(make_yahoo_source):
    replay = YahooReplay(NVDA)
    source = make_yahoo_source(replay, lambda: pd.Timestamp("2022-06-01", tz="UTC"))
    with pytest.raises(ReplayError):
        source.fetch("NVDA", "1h", pd.Timestamp("2022-05-01", tz="UTC"), None)


def test_scenarios_answer_like_a_failing_yahoo():
    replay = YahooReplay(NVDA)
    replay.add_unknown("NOPE")
    response = chart(replay, "NOPE", range="1d", interval="1d")
    assert response.status_code == 404
    assert response.json()["chart"]["error"]["description"] == "No data found, symbol may be delisted"

    replay.rate_limited = True
    assert chart(replay, "NVDA", range="1d").status_code == 429
    replay.rate_limited = False

    replay.latency = 5
    with pytest.raises(requests.exceptions.ReadTimeout):
        chart(replay, "NVDA", timeout=4.9, range="1d")
    assert chart(replay, "NVDA", timeout=5, range="1d").status_code == 200
    replay.latency = 0

    replay.unreachable = True
    with pytest.raises(requests.exceptions.ConnectionError):
        replay.session.get("https://fc.yahoo.com")
    with pytest.raises(requests.exceptions.ConnectionError):
        chart(replay, "NVDA", range="1d")


def test_as_of_before_a_split_undoes_it():
    replay = YahooReplay(NVDA)
    replay.as_of("2021-07-20")  # the 4:1 split was effective on 2021-07-20
    result = result_of(chart(replay, "NVDA", period1=0, period2=seconds("2022-02-01"), interval="1d"))

    recorded = load_recording(NVDA).result
    n = len(result["timestamp"])
    assert pd.Timestamp(result["timestamp"][-1], unit="s").date().isoformat() == "2021-07-19"
    assert result["timestamp"] == recorded["timestamp"][:n]
    then, now = result["indicators"]["quote"][0], recorded["indicators"]["quote"][0]
    np.testing.assert_allclose(then["close"], np.array(now["close"][:n]) * 4, rtol=1e-15)
    assert then["volume"] == [v // 4 for v in now["volume"][:n]]
    assert all(v % 4 == 0 for v in now["volume"][:n])  # Yahoo's split-adjusted volumes are raw x 4
    assert "splits" not in result.get("events", {})
    adjclose = result["indicators"]["adjclose"][0]["adjclose"]
    assert adjclose[-1] == pytest.approx(then["close"][-1], rel=1e-12)  # no dividend after the date yet


def test_as_of_drops_later_dividends_from_adjclose():
    replay = YahooReplay(MSFT)
    replay.as_of("2021-06-01")  # after the dividends of 2021-02-17 and 2021-05-19
    result = result_of(chart(replay, "MSFT", period1=0, period2=seconds("2022-02-01"), interval="1d"))

    close = np.array(result["indicators"]["quote"][0]["close"])
    factor = np.array(result["indicators"]["adjclose"][0]["adjclose"]) / close
    stamps = result["timestamp"]
    dividends = sorted(result["events"]["dividends"].values(), key=lambda d: d["date"])
    assert [d["amount"] for d in dividends] == [0.56, 0.56]
    assert factor[-1] == pytest.approx(1.0, rel=1e-12)
    for dividend in dividends:  # Yahoo's adjustment: x (1 - dividend / previous close) before the ex-date
        i = stamps.index(dividend["date"])
        assert factor[i - 1] / factor[i] == pytest.approx(1 - dividend["amount"] / close[i - 1], rel=1e-6)
    assert factor[stamps.index(dividends[-1]["date"]) :] == pytest.approx(1.0, rel=1e-6)  # float32 noise


def test_a_cache_built_before_a_split_differs_from_a_download_after_it_by_the_split(make_yahoo_source):
    replay = YahooReplay(NVDA)
    when = {"now": pd.Timestamp("2021-07-20", tz="UTC")}
    source = make_yahoo_source(replay, lambda: when["now"])

    replay.as_of(when["now"])
    before = source.fetch("NVDA", "1d", None, None)
    replay.as_of(None)
    when["now"] = pd.Timestamp("2022-02-01", tz="UTC")
    after = source.fetch("NVDA", "1d", None, None)

    assert before.corporate_actions.empty
    assert after.corporate_actions["Stock Splits"].to_dict() == {pd.Timestamp("2021-07-20", tz="America/New_York"): 4.0}
    old, new = before.frame, after.frame.loc[before.frame.index]
    assert (new["Volume"] == old["Volume"] * 4).all()
    ratio = old["Close"] / new["Close"]  # 4, times the later dividends the old download had not applied
    np.testing.assert_allclose(ratio, ratio.iloc[0], rtol=1e-9)
    assert ratio.iloc[0] == pytest.approx(4, rel=0.01)
