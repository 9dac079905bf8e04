"""The window rules of dataprovider.engine.window on a frame of real trading days."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from dataprovider.bars import Bars
from dataprovider.engine.window import select_window
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.frames import normalize_frame
from dataprovider.protocol.query import BarsQuery, TimeBound

NY = "America/New_York"


def bars_frame(index: pd.DatetimeIndex, resolution: DataResolution) -> pd.DataFrame:
    """Canonical bars on ``index`` whose Close is the bar number."""
    close = np.arange(len(index), dtype="float64")
    frame = pd.DataFrame({"Open": close, "High": close, "Low": close, "Close": close, "Volume": 1}, index=index)
    return normalize_frame(frame, resolution, NY)


@pytest.fixture
def daily() -> pd.DataFrame:
    """Business days of 2015-2016 (weekends absent), Close = day number."""
    return bars_frame(pd.bdate_range("2015-01-01", "2016-12-30", tz=NY), DataResolution.DAY_01)


def run(frame: pd.DataFrame, **kwargs) -> pd.DataFrame:
    query = BarsQuery("SPY", kwargs.pop("resolution", DataResolution.DAY_01), **kwargs)
    bars = Bars.from_frame(frame)
    calls = []

    def read(start, end):
        calls.append((start, end))
        return bars.between(start, end)

    out = select_window(read, bars.last, query).to_frame()
    run.calls = calls
    return out


def test_period_counts_back_from_newest_bar(daily):
    out = run(daily, period=DataPeriod.YEAR_01)
    assert out.index[-1] == daily.index[-1]
    assert out.index[0] == pd.Timestamp("2015-12-31", tz=NY)  # after 2015-12-30, the anchor minus a year
    month = run(daily, period=DataPeriod.MONTH_01)
    assert month.index[0] == pd.Timestamp("2016-12-01", tz=NY)


def test_trading_day_periods_count_dates_with_bars(daily):
    five = run(daily, period=DataPeriod.DAY_05)
    assert len(five) == 5 and five.index[0] == pd.Timestamp("2016-12-26", tz=NY)
    one = run(daily, period=DataPeriod.DAY_01)
    assert list(one.index) == [daily.index[-1]]


def test_ytd_and_max(daily):
    assert run(daily, period=DataPeriod.YTD).index[0] == pd.Timestamp("2016-01-01", tz=NY)
    assert len(run(daily, period=DataPeriod.YEAR_MAX)) == len(daily)


def test_time_bounds_are_inclusive_and_override_period(daily):
    out = run(
        daily,
        period=DataPeriod.MONTH_01,
        time_start=TimeBound.parse(dt.date(2015, 3, 2)),
        time_end=TimeBound.parse("2015-03-31"),
    )
    assert out.index[0] == pd.Timestamp("2015-03-02", tz=NY)
    assert out.index[-1] == pd.Timestamp("2015-03-31", tz=NY)
    assert len(out) == 22


def test_period_counts_back_from_time_end(daily):
    out = run(daily, period=DataPeriod.DAY_05, time_end=TimeBound.parse("2015-06-07"))  # a Sunday
    assert list(out.index.strftime("%m-%d")) == ["06-01", "06-02", "06-03", "06-04", "06-05"]


def test_limit_keeps_last_rows_after_filtering(daily):
    out = run(daily, period=DataPeriod.YEAR_MAX, time_end=TimeBound.parse("2015-12-31"), limit=3)
    assert list(out.index.strftime("%Y-%m-%d")) == ["2015-12-29", "2015-12-30", "2015-12-31"]


def test_reads_only_what_the_window_needs(daily):
    run(daily, period=DataPeriod.MONTH_01)
    start, end = run.calls[-1]
    assert end is None and start >= pd.Timestamp("2016-11-29", tz=NY)


def test_datetime_end_includes_that_instant():
    frame = bars_frame(pd.date_range("2020-01-02 09:30", periods=6, freq="1h", tz=NY), DataResolution.HOUR_01)
    out = run(
        frame,
        resolution=DataResolution.HOUR_01,
        period=DataPeriod.YEAR_MAX,
        time_end=TimeBound.parse("2020-01-02T11:30:00"),
    )
    assert out.index[-1] == pd.Timestamp("2020-01-02 11:30", tz=NY)
    utc_end = run(
        frame,
        resolution=DataResolution.HOUR_01,
        period=DataPeriod.YEAR_MAX,
        time_end=TimeBound.parse("2020-01-02T16:30:00Z"),
    )  # 11:30 in New York
    assert utc_end.index[-1] == pd.Timestamp("2020-01-02 11:30", tz=NY)


@pytest.mark.parametrize("bad", ["not a date", 12, ["2020-01-01"]])
def test_time_bound_rejects_garbage(bad):
    with pytest.raises(ValueError):
        TimeBound.parse(bad)
