"""The README's usage, run as a user runs it, against a real server on the bundled sample data."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dataprovider import DataPeriod, DataProviderLocal, DataResolution
from dataprovider.sources.sample import load_sample, sample_entries
from tests.conftest import Now
from tests.support.yahoo_replay import YahooReplay


def sample(ticker: str, resolution: str) -> pd.DataFrame:
    entry = next(e for e in sample_entries() if e.ticker == ticker and e.resolution.value == resolution)
    return load_sample(entry)


@pytest.fixture(params=["offline", "yahoo unreachable"])
def provider(request, live_server, make_yahoo_source) -> DataProviderLocal:
    """A client of a server on the sample data: offline, or with a Yahoo that cannot be reached.

    The README's calls read the cache alone (``local_only`` defaults to True), so both answer alike.
    """
    source = None
    if request.param == "yahoo unreachable":
        replay = YahooReplay()
        replay.unreachable = True
        source = make_yahoo_source(replay, Now(pd.Timestamp.now("UTC")))
    return live_server(source).client()


def assert_canonical(frame: pd.DataFrame, index_name: str, tz: str) -> None:
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert frame.index.name == index_name and str(frame.index.tz) == tz
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert [str(t) for t in frame.dtypes] == ["float64"] * 4 + ["int64"]


def test_one_ticker_local_only(provider):
    df = provider.get_data_socket(
        ticker="BTC-USD", resolution=DataResolution.DAY_01, period=DataPeriod.YEAR_01, local_only=True
    )
    full = sample("BTC-USD", "1d")
    assert_canonical(df, "Date", "UTC")
    assert df.index[-1] == full.index[-1]
    assert df.index[0] == full.index[-1] - pd.DateOffset(years=1) + pd.Timedelta(days=1)
    pd.testing.assert_frame_equal(df, full.loc[df.index[0] :])


def test_callbacks_and_limit(provider):
    seen, errors = [], []
    df = provider.get_data_socket(
        ticker="ETH-USD",
        resolution=DataResolution.HOUR_01,
        period=DataPeriod.MONTH_01,
        limit=100,
        callback=seen.append,
        error_callback=errors.append,
    )
    assert errors == [] and len(df) == 100
    assert_canonical(df, "Datetime", "UTC")
    pd.testing.assert_frame_equal(df, sample("ETH-USD", "1h").iloc[-100:])
    (info,) = seen
    assert (info["ticker"], info["resolution"], info["rows"]) == ("ETH-USD", "1h", 100)
    assert pd.Timestamp(info["start_date"]) == df.index[0] and pd.Timestamp(info["end_date"]) == df.index[-1]
    assert info["data"] is not None and info["source"] == "sample"


def test_batch_with_progress(provider):
    progress = []
    tickers = ["BTC-USD", "ETH-USD", "SPY", "AAPL"]
    results = provider.get_batch_data_socket(
        tickers=tickers,
        resolution=DataResolution.DAY_01,
        period=DataPeriod.YEAR_01,
        limit=100,
        progress_callback=progress.append,
    )
    assert list(results) == tickers
    for ticker, frame in results.items():
        pd.testing.assert_frame_equal(frame, sample(ticker, "1d").iloc[-100:])
    assert [p["index"] for p in progress] == [1, 2, 3, 4]
    assert [p["progress"] for p in progress] == ["1/4", "2/4", "3/4", "4/4"]
    assert sorted(p["ticker"] for p in progress) == sorted(tickers)
    assert all(p["status"] == "ok" and p["rows"] == 100 and p["total"] == 4 for p in progress)


def test_persistent_connection(provider):
    provider._connect_socket()
    try:
        frames = [
            provider.get_data_socket(t, DataResolution.DAY_01, DataPeriod.MONTH_01, auto_disconnect=False)
            for t in ("SPY", "AAPL", "GOOG")
        ]
        assert provider.connected
    finally:
        provider._disconnect_socket()
    assert not provider.connected
    assert all(len(f) > 15 for f in frames)


def test_date_window(provider):
    df = provider.get_data_socket(
        ticker="SPY",
        resolution=DataResolution.DAY_01,
        period=DataPeriod.YEAR_MAX,
        time_start=dt.date(2015, 1, 1),
        time_end=dt.date(2015, 12, 31),
    )
    assert df.index[0] == pd.Timestamp("2015-01-02", tz="America/New_York")
    assert df.index[-1] == pd.Timestamp("2015-12-31", tz="America/New_York")
    assert len(df) == 252  # NYSE trading days in 2015
    assert_canonical(df, "Date", "America/New_York")


def test_instruments(provider):
    table = provider.get_instruments_local()
    assert list(table.columns) == [
        "ticker",
        "resolution",
        "rows",
        "first",
        "last",
        "timezone",
        "source",
        "last_fetched",
    ]
    entries = sample_entries()
    assert len(table) == len(entries)
    spy = table[(table.ticker == "SPY") & (table.resolution == "1d")].iloc[0]
    full = sample("SPY", "1d")
    assert spy["rows"] == len(full) and spy["last"] == full.index[-1]


def test_strings_work_like_enums(provider):
    a = provider.get_data_socket("AAPL", "1wk", "5y", local_only=True)
    b = provider.get_data_socket("AAPL", DataResolution.WEEK_01, DataPeriod.YEAR_05, local_only=True)
    pd.testing.assert_frame_equal(a, b)
    assert a.index.dayofweek.unique().tolist() == [0]  # weekly bars are labelled by their Monday


def test_rest_twins_return_the_same(provider):
    socket = provider.get_data_socket("SPY", "1d", "1y", limit=50)
    rest = provider.get_data("SPY", "1d", "1y", limit=50)
    pd.testing.assert_frame_equal(socket, rest)
    batch = provider.get_batch_data(["SPY", "AAPL"], "1d", "1y", limit=20)
    pd.testing.assert_frame_equal(batch["SPY"], socket.iloc[-20:])
