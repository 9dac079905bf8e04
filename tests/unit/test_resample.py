"""Tests for dataprovider.engine.resample: the derivation table, bin labels and aggregation.

Small frames built here check each rule by hand; the files in tests/data/resample
(see the README there) check the results against bars published at the coarser
resolution.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataprovider.engine.resample import can_resample, derivation_sources, resample_bars
from dataprovider.enums import DataResolution
from dataprovider.errors import InvalidRequestError
from dataprovider.frames import normalize_frame

DATA = Path(__file__).resolve().parents[1] / "data" / "resample"
NY = "America/New_York"
R = DataResolution


def bars(times, tz, resolution, rows=None):
    """A canonical frame of ``resolution`` bars at ``times`` (naive ones are wall clock in ``tz``).

    ``rows`` are (open, high, low, close, volume); by default bar i is
    (i, i + 0.5, i - 0.5, i + 0.25, 10 * i + 1), so every bin's result can be
    read off the bar numbers.
    """
    if rows is None:
        rows = [(i, i + 0.5, i - 0.5, i + 0.25, 10 * i + 1) for i in range(len(times))]
    frame = pd.DataFrame(rows, columns=["Open", "High", "Low", "Close", "Volume"])
    frame.index = pd.DatetimeIndex(times)
    return normalize_frame(frame, resolution, tz)


def wall_clock(index):
    return [t.strftime("%Y-%m-%d %H:%M%z") for t in index]


def assert_canonical(frame, resolution, tz):
    assert frame.index.name == resolution.index_name
    assert str(frame.index.dtype) == f"datetime64[ns, {tz}]"
    assert frame.index.is_unique and frame.index.is_monotonic_increasing
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert [str(t) for t in frame.dtypes] == ["float64"] * 4 + ["int64"]
    assert not frame.isna().any().any()


# ---------------------------------------------------------------------------
# Derivation table

DERIVABLE = {
    "1m": {"2m", "5m", "15m", "30m", "1h", "1d", "1wk", "1mo"},
    "2m": {"30m", "1h", "1d", "1wk", "1mo"},
    "5m": {"15m", "30m", "1h", "1d", "1wk", "1mo"},
    "15m": {"30m", "1h", "1d", "1wk", "1mo"},
    "30m": {"1h", "1d", "1wk", "1mo"},
    "1h": {"1d", "1wk", "1mo"},
    "1d": {"1wk", "1mo"},
    "1wk": set(),
    "1mo": set(),
}


@pytest.mark.parametrize("source", R.values())
@pytest.mark.parametrize("target", R.values())
def test_can_resample_follows_the_table(source, target):
    assert can_resample(source, target) is (target in DERIVABLE[source])
    assert can_resample(R(source), R(target)) is (target in DERIVABLE[source])


def test_derivation_sources_are_coarsest_first():
    assert derivation_sources("1h") == [R.MINUTE_30, R.MINUTE_15, R.MINUTE_05, R.MINUTE_02, R.MINUTE_01]
    assert derivation_sources(R.MINUTE_15) == [R.MINUTE_05, R.MINUTE_01]
    assert derivation_sources("5m") == [R.MINUTE_01]
    assert derivation_sources("1mo") == [R.DAY_01, *derivation_sources("1d")]
    assert derivation_sources("1wk") == derivation_sources("1mo")
    assert derivation_sources("1m") == []


@pytest.mark.parametrize("source, target", [("1wk", "1mo"), ("1h", "30m"), ("1d", "1d"), ("2m", "5m")])
def test_underivable_pairs_are_refused(source, target):
    frame = bars(["2024-01-02"], "UTC", R.parse(source))
    with pytest.raises(InvalidRequestError) as info:
        resample_bars(frame, source, target)
    assert info.value.code == "INVALID_RESOLUTION"
    assert f"{target} bars cannot be derived from {source} bars" in info.value.message


def test_naive_or_unsorted_index_is_refused():
    frame = bars(["2024-01-02 10:00", "2024-01-02 10:01"], "UTC", R.MINUTE_01)
    with pytest.raises(ValueError, match="tz-aware"):
        resample_bars(frame.tz_localize(None), "1m", "5m")
    with pytest.raises(ValueError, match="increasing"):
        resample_bars(frame.iloc[::-1], "1m", "5m")


# ---------------------------------------------------------------------------
# Aggregation rules


def test_each_column_is_aggregated_by_its_rule():
    times = [f"2024-01-02 10:0{m}" for m in range(5)]
    rows = [
        (10.0, 11.0, 9.5, 10.5, 100),
        (10.5, 13.0, 10.0, 12.0, 0),  # the high
        (12.0, 12.5, 8.0, 9.0, 250),  # the low
        (9.0, 10.0, 8.5, 9.75, 7),
        (9.75, 10.25, 9.25, 10.0, 3),
    ]
    out = resample_bars(bars(times, "UTC", R.MINUTE_01, rows), "1m", "5m")
    assert_canonical(out, R.MINUTE_05, "UTC")
    assert wall_clock(out.index) == ["2024-01-02 10:00+0000"]
    assert out.iloc[0].to_dict() == {"Open": 10.0, "High": 13.0, "Low": 8.0, "Close": 10.0, "Volume": 360}


def test_output_is_already_canonical():
    times = pd.date_range("2024-03-08 09:30", "2024-03-12 15:59", freq="min")
    times = times[(times.dayofweek < 5) & (times.hour * 60 + times.minute >= 570) & (times.hour < 16)]
    frame = bars(times, NY, R.MINUTE_01)
    for target in ("5m", "1h", "1d", "1wk", "1mo"):
        out = resample_bars(frame, "1m", target)
        resolution = R(target)
        assert_canonical(out, resolution, NY)
        pd.testing.assert_frame_equal(out, normalize_frame(out, resolution, NY))


def test_empty_input_gives_an_empty_canonical_frame():
    frame = bars([], NY, R.MINUTE_05)
    for target in ("1h", "1d", "1mo"):
        out = resample_bars(frame, "5m", target)
        assert out.empty
        assert_canonical(out, R(target), NY)


def test_resampling_composes():
    times = pd.date_range("2024-03-04", "2024-03-16", freq="5min", tz="UTC")
    frame = bars(times, "UTC", R.MINUTE_05)
    via_hours = resample_bars(resample_bars(frame, "5m", "1h"), "1h", "1d")
    pd.testing.assert_frame_equal(via_hours, resample_bars(frame, "5m", "1d"))
    via_days = resample_bars(resample_bars(frame, "5m", "1d"), "1d", "1wk")
    pd.testing.assert_frame_equal(via_days, resample_bars(frame, "5m", "1wk"))


# ---------------------------------------------------------------------------
# Labels


def test_daily_label_is_local_midnight_of_the_local_date():
    # 20:30 New York is already the next day in UTC; the bar still belongs to its local date.
    frame = bars(["2024-07-01 09:30", "2024-07-01 15:30", "2024-07-01 20:30", "2024-07-02 04:00"], NY, R.HOUR_01)
    out = resample_bars(frame, "1h", "1d")
    assert wall_clock(out.index) == ["2024-07-01 00:00-0400", "2024-07-02 00:00-0400"]
    assert out["Volume"].tolist() == [1 + 11 + 21, 31]


def test_weekly_label_is_monday_and_follows_dst_in_new_york():
    # DST started on Sunday 2024-03-10 and ended on Sunday 2024-11-03.
    days = [
        "2024-03-07",
        "2024-03-08",
        "2024-03-11",
        "2024-03-15",
        "2024-10-31",
        "2024-11-01",
        "2024-11-04",
        "2024-11-08",
    ]
    out = resample_bars(bars(days, NY, R.DAY_01), "1d", "1wk")
    assert wall_clock(out.index) == [
        "2024-03-04 00:00-0500",
        "2024-03-11 00:00-0400",
        "2024-10-28 00:00-0400",
        "2024-11-04 00:00-0500",
    ]
    assert out["Open"].tolist() == [0, 2, 4, 6]
    assert out["Close"].tolist() == [1.25, 3.25, 5.25, 7.25]


def test_weekly_bins_of_a_24_7_market_run_monday_to_sunday_utc():
    hours = pd.date_range("2024-01-06 22:00", "2024-01-08 01:00", freq="h", tz="UTC")  # Sat .. Mon
    out = resample_bars(bars(hours, "UTC", R.HOUR_01), "1h", "1wk")
    assert wall_clock(out.index) == ["2024-01-01 00:00+0000", "2024-01-08 00:00+0000"]
    sunday_last = hours.get_loc(pd.Timestamp("2024-01-07 23:00", tz="UTC"))
    assert out["Close"].iloc[0] == sunday_last + 0.25
    assert out["Open"].iloc[1] == sunday_last + 1


def test_monthly_label_is_the_first_local_midnight():
    days = ["2024-02-29", "2024-03-01", "2024-03-28", "2024-04-01", "2024-04-30"]
    out = resample_bars(bars(days, NY, R.DAY_01), "1d", "1mo")
    assert wall_clock(out.index) == [
        "2024-02-01 00:00-0500",
        "2024-03-01 00:00-0500",
        "2024-04-01 00:00-0400",
    ]
    assert out["Volume"].tolist() == [1, 11 + 21, 31 + 41]


def test_us_equity_hours_are_anchored_at_the_0930_open():
    times = [f"2024-06-{d} {h}" for d in (10, 11) for h in ("09:30", "10:00", "10:30", "11:00", "15:00", "15:30")]
    out = resample_bars(bars(times, NY, R.MINUTE_30), "30m", "1h")
    assert [t.strftime("%d %H:%M") for t in out.index] == [
        "10 09:30",
        "10 10:30",
        "10 14:30",
        "10 15:30",
        "11 09:30",
        "11 10:30",
        "11 14:30",
        "11 15:30",
    ]
    # 15:30 is the last half hour of the session, a bin of one bar.
    assert out["Open"].tolist() == [0, 2, 4, 5, 6, 8, 10, 11]
    assert out["Close"].tolist() == [1.25, 3.25, 4.25, 5.25, 7.25, 9.25, 10.25, 11.25]


def test_crypto_hours_are_on_the_hour_utc():
    times = pd.date_range("2024-01-01 00:00", periods=96, freq="15min", tz="UTC")
    out = resample_bars(bars(times, "UTC", R.MINUTE_15), "15m", "1h")
    assert list(out.index) == list(pd.date_range("2024-01-01", periods=24, freq="h", tz="UTC"))
    assert out["Volume"].tolist() == [sum(10 * i + 1 for i in range(4 * h, 4 * h + 4)) for h in range(24)]


def test_anchor_is_the_most_common_first_bar_of_the_day():
    # Two sessions open at 09:30, one joins late at 10:05: the grid stays on :30.
    times = [
        "2024-06-10 09:30",
        "2024-06-10 10:35",
        "2024-06-11 10:05",
        "2024-06-11 10:35",
        "2024-06-12 09:30",
        "2024-06-12 10:30",
    ]
    out = resample_bars(bars(times, NY, R.MINUTE_05), "5m", "1h")
    assert [t.strftime("%d %H:%M") for t in out.index] == [
        "10 09:30",
        "10 10:30",
        "11 09:30",
        "11 10:30",
        "12 09:30",
        "12 10:30",
    ]


def test_no_bin_crosses_local_midnight():
    # The grid is on :30 (three sessions open at 09:30), so 23:30-00:30 would span two days.
    times = [
        "2024-01-02 09:30",
        "2024-01-03 09:30",
        "2024-01-04 09:30",
        "2024-01-04 23:30",
        "2024-01-05 00:00",
        "2024-01-05 00:30",
    ]
    out = resample_bars(bars(times, "UTC", R.MINUTE_30), "30m", "1h")
    assert wall_clock(out.index)[3:] == [
        "2024-01-04 23:30+0000",
        "2024-01-05 00:00+0000",
        "2024-01-05 00:30+0000",
    ]
    assert out["Open"].tolist() == [0, 1, 2, 3, 4, 5]


def test_hours_across_the_new_york_fall_back():
    # On 2024-11-03 the wall clock ran 01:00-01:59 twice (EDT, then EST).
    times = pd.date_range("2024-11-03 04:00", "2024-11-03 07:30", freq="30min", tz="UTC")
    frame = bars(times, NY, R.MINUTE_30)
    out = resample_bars(frame, "30m", "1h")
    assert wall_clock(out.index) == [
        "2024-11-03 00:00-0400",
        "2024-11-03 01:00-0400",
        "2024-11-03 01:00-0500",
        "2024-11-03 02:00-0500",
    ]
    assert out["Open"].tolist() == [0, 2, 4, 6]
    day = resample_bars(frame, "30m", "1d")
    assert wall_clock(day.index) == ["2024-11-03 00:00-0400"]
    assert day["Volume"].iloc[0] == frame["Volume"].sum()


def test_hours_on_a_half_hour_grid_across_the_fall_back_stay_in_order():
    # The day opens at 00:30, so the grid is on :30. The second 01:00 (EST) falls in the
    # wall-clock bin 00:30-01:30 that already closed an hour earlier; it joins the open bin.
    times = pd.date_range("2024-11-03 04:30", "2024-11-03 07:30", freq="30min", tz="UTC")
    out = resample_bars(bars(times, NY, R.MINUTE_30), "30m", "1h")
    assert wall_clock(out.index) == [
        "2024-11-03 00:30-0400",
        "2024-11-03 01:30-0400",
        "2024-11-03 01:30-0500",
        "2024-11-03 02:30-0500",
    ]
    assert out["Open"].tolist() == [0, 2, 4, 6]
    assert out["Close"].tolist() == [1.25, 3.25, 5.25, 6.25]


def test_hours_across_the_new_york_spring_forward():
    # On 2024-03-10 the wall clock jumped from 02:00 EST to 03:00 EDT.
    times = pd.date_range("2024-03-10 05:00", "2024-03-10 07:30", freq="30min", tz="UTC")
    out = resample_bars(bars(times, NY, R.MINUTE_30), "30m", "1h")
    assert wall_clock(out.index) == [
        "2024-03-10 00:00-0500",
        "2024-03-10 01:00-0500",
        "2024-03-10 03:00-0400",
    ]
    assert out["Volume"].tolist() == [1 + 11, 21 + 31, 41 + 51]


def test_a_holiday_makes_no_empty_bin():
    # Thanksgiving 2024 (Thursday 28th) had no session; Friday closed early at 13:00.
    times = [
        *pd.date_range("2024-11-27 09:30", "2024-11-27 15:30", freq="30min"),
        *pd.date_range("2024-11-29 09:30", "2024-11-29 12:30", freq="30min"),
    ]
    frame = bars(times, NY, R.MINUTE_30)
    days = resample_bars(frame, "30m", "1d")
    assert wall_clock(days.index) == ["2024-11-27 00:00-0500", "2024-11-29 00:00-0500"]
    assert days["Open"].tolist() == [0, 13]
    assert days["Close"].tolist() == [12.25, 19.25]
    hours = resample_bars(frame, "30m", "1h")
    last_day = [t.strftime("%d %H:%M") for t in hours.index[-4:]]
    assert last_day == ["29 09:30", "29 10:30", "29 11:30", "29 12:30"]
    assert hours["Close"].iloc[-1] == 19.25
    week = resample_bars(days, "1d", "1wk")
    assert wall_clock(week.index) == ["2024-11-25 00:00-0500"]
    assert week["Volume"].iloc[0] == frame["Volume"].sum()


# ---------------------------------------------------------------------------
# Partial bins


def test_partial_leading_bin_is_dropped_only_after_coverage_start():
    hours = pd.date_range("2024-01-02 12:00", "2024-01-04 05:00", freq="h", tz="UTC")
    frame = bars(hours, "UTC", R.HOUR_01)
    kept = resample_bars(frame, "1h", "1d")
    assert wall_clock(kept.index) == [
        "2024-01-02 00:00+0000",
        "2024-01-03 00:00+0000",
        "2024-01-04 00:00+0000",
    ]
    assert kept["Open"].iloc[0] == 0
    dropped = resample_bars(frame, "1h", "1d", coverage_start=hours[0])
    pd.testing.assert_frame_equal(dropped, kept.iloc[1:])
    # Complete from midnight: the first day is whole and stays. A naive value is read in the frame's tz.
    pd.testing.assert_frame_equal(resample_bars(frame, "1h", "1d", coverage_start="2024-01-02"), kept)
    # The last day holds 6 of its 24 hours, a still-forming bar: it stays.
    assert dropped["Volume"].iloc[-1] == sum(10 * i + 1 for i in range(36, 42))


def test_coverage_start_in_the_exchange_timezone_and_mid_week():
    days = ["2024-03-06", "2024-03-07", "2024-03-08", "2024-03-11"]
    frame = bars(days, NY, R.DAY_01)
    out = resample_bars(frame, "1d", "1wk", coverage_start=pd.Timestamp("2024-03-06 05:00", tz="UTC"))
    assert wall_clock(out.index) == ["2024-03-11 00:00-0400"]
    # 2024-03-04 05:00 UTC is Monday midnight in New York: the whole week is covered.
    out = resample_bars(frame, "1d", "1wk", coverage_start=pd.Timestamp("2024-03-04 05:00", tz="UTC"))
    assert wall_clock(out.index) == ["2024-03-04 00:00-0500", "2024-03-11 00:00-0400"]
    # A naive value is New York wall-clock time: 02:00 on Monday is after the week began.
    out = resample_bars(frame, "1d", "1wk", coverage_start="2024-03-04 02:00")
    assert wall_clock(out.index) == ["2024-03-11 00:00-0400"]


# ---------------------------------------------------------------------------
# Real data (tests/data/resample/README.md says where each file comes from)


def read_coinbase(name, date_format, resolution):
    raw = pd.read_csv(DATA / name, skiprows=1)  # line 1 is the CryptoDataDownload banner
    raw.index = pd.to_datetime(raw["date"], format=date_format)
    # Yahoo's BTC-USD Volume is in USD, the file's 'volume' column.
    return normalize_frame(raw.rename(columns=str.capitalize), resolution, "UTC")


def read_spx(name, date_format, resolution):
    raw = pd.read_csv(DATA / name)
    raw.index = pd.to_datetime(raw.pop("Date"), format=date_format)
    return normalize_frame(raw, resolution, NY)


def read_yahoo_chart(name):
    recorded = json.loads((DATA / name).read_text())
    result = json.loads(recorded["response"]["body"])["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    columns = ("open", "high", "low", "close", "volume")
    frame = pd.DataFrame({col.capitalize(): quote[col] for col in columns})
    frame.index = pd.to_datetime(result["timestamp"], unit="s", utc=True)
    timezone = result["meta"]["exchangeTimezoneName"]
    return normalize_frame(frame, R.MINUTE_01, timezone), recorded["request"]["url"]


def test_coinbase_hours_add_up_to_coinbase_days():
    hours = read_coinbase("BTCUSD_1h_2019-10-01_2019-10-17.csv", "%Y-%m-%d %I-%p", R.HOUR_01)
    days = read_coinbase("BTCUSD_1d_2019-10-01_2019-10-17.csv", "%Y-%m-%d", R.DAY_01)
    assert len(hours) == 16 * 24 + 10  # 2019-10-01 00:00 .. 2019-10-17 09:00, no gaps
    out = resample_bars(hours, "1h", "1d")
    assert_canonical(out, R.DAY_01, "UTC")
    assert out.index.equals(days.index)
    # Open, High and Low agree exactly on all 17 days, the partial last day included.
    pd.testing.assert_frame_equal(out[["Open", "High", "Low"]], days[["Open", "High", "Low"]])
    # Close too, except on 2019-10-17, the day still forming when both files were written
    # (10 hourly bars; the volumes agree, the closes do not).
    pd.testing.assert_series_equal(out["Close"].iloc[:-1], days["Close"].iloc[:-1])
    assert (out["Close"].iloc[-1], days["Close"].iloc[-1]) == (8035.88, 8034.32)
    # USD volumes carry cents; rounding each hourly bar to whole units moves a day by at most 12.
    assert (out["Volume"] - days["Volume"]).abs().max() <= 12


def test_coinbase_partial_first_day_is_dropped_with_coverage_start():
    hours = read_coinbase("BTCUSD_1h_2019-10-01_2019-10-17.csv", "%Y-%m-%d %I-%p", R.HOUR_01)
    days = read_coinbase("BTCUSD_1d_2019-10-01_2019-10-17.csv", "%Y-%m-%d", R.DAY_01)
    late = hours.loc["2019-10-01 05:00":]
    kept = resample_bars(late, "1h", "1d")
    assert kept.index[0] == days.index[0]
    assert kept["Open"].iloc[0] != days["Open"].iloc[0]  # 05:00's open, not midnight's
    dropped = resample_bars(late, "1h", "1d", coverage_start=late.index[0])
    pd.testing.assert_frame_equal(dropped, kept.iloc[1:])
    pd.testing.assert_frame_equal(dropped[["Open", "High", "Low"]], days[["Open", "High", "Low"]].iloc[1:])


def test_spx_minutes_add_up_to_the_spx_daily_file():
    minutes = read_spx("SPX_1m_2019-11-07_2019-11-08.csv", "%m/%d/%Y %H:%M", R.MINUTE_01)
    days = read_spx("SPX_1d_2019-11-07_2019-11-08.csv", "%m/%d/%Y", R.DAY_01)
    # 11-07 has 391 bars (09:30 .. 16:00); 11-08 has 390 (it ends at 15:59).
    assert minutes.groupby(minutes.index.date).size().tolist() == [391, 390]
    out = resample_bars(minutes, "1m", "1d")
    assert_canonical(out, R.DAY_01, NY)
    assert out.index.equals(days.index)
    pd.testing.assert_frame_equal(out[["Open", "Low"]], days[["Open", "Low"]])
    # On 11-08 the daily high is above every minute bar's high; the file lacks that day's 16:00 bar.
    assert out["High"].tolist() == [days["High"].iloc[0], 3092.91]
    assert days["High"].iloc[1] == 3093.09
    # The daily close is not the last minute bar's close: it differs by 0.17 on both days.
    np.testing.assert_allclose((out["Close"] - days["Close"]).abs(), [0.17, 0.17], atol=1e-9)
    assert out["Volume"].tolist() == [0, 0]  # the index has no volume in the minute file


def test_spx_minutes_to_hours_start_at_0930():
    minutes = read_spx("SPX_1m_2019-11-07_2019-11-08.csv", "%m/%d/%Y %H:%M", R.MINUTE_01)
    out = resample_bars(minutes, "1m", "1h")
    labels = ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    assert [t.strftime("%H:%M") for t in out.index] == labels * 2
    # 11-07's 15:30 bin ends with the 16:00 bar.
    assert out["Close"].iloc[6] == minutes.loc["2019-11-07 16:00", "Close"]
    pd.testing.assert_frame_equal(resample_bars(out, "1h", "1d"), resample_bars(minutes, "1m", "1d"))


def test_yahoo_aapl_minutes_to_hours():
    minutes, url = read_yahoo_chart("nyf2_chart-AAPL-2024-10-02-to-2024-10-03-includePrePost-false-interval-1m.json")
    period_end = pd.Timestamp(int(url.split("period2=")[1].split("&")[0]), unit="s", tz="UTC")
    # Yahoo adds one bar past period2 (the live price, stamped at 16:00 the next day);
    # yfinance drops it, so do we.
    assert wall_clock(minutes.index[minutes.index >= period_end]) == ["2024-10-03 16:00-0400"]
    session = minutes[minutes.index < period_end]
    assert len(session) == 389  # 390 minutes, one of them (11:15) all-null
    out = resample_bars(session, "1m", "1h")
    assert_canonical(out, R.HOUR_01, NY)
    assert wall_clock(out.index) == [f"2024-10-02 {h:02}:30-0400" for h in range(9, 16)]
    expected = session.resample("60min", offset="30min").agg(
        {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}
    )
    pd.testing.assert_frame_equal(out, expected, check_freq=False, check_names=False)
    pd.testing.assert_frame_equal(out, resample_bars(resample_bars(session, "1m", "5m"), "5m", "1h"))
    # With the extra bar the two days tie on their anchor (09:30 vs 16:00); the earlier one wins.
    with_extra = resample_bars(minutes, "1m", "1h")
    assert wall_clock(with_extra.index) == [*wall_clock(out.index), "2024-10-03 15:30-0400"]
