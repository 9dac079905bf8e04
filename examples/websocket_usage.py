"""The guide's Socket.IO examples, run against a server: ``python examples/websocket_usage.py``.

Start a server first (``python server.py``, or ``make serve``). The client talks to
``$DATAPROVIDER_URL``, else http://127.0.0.1:5001. Every request here is ``local_only=True`` (the
default, spelled out): it is answered from the server's cache alone (the bundled sample data on a
fresh server), so the script works offline. With ``local_only=False`` the server downloads what its
cache lacks from Yahoo Finance.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dataprovider import DataPeriod, DataProviderLocal, DataResolution


def describe(frame: pd.DataFrame | None) -> str:
    """One line about a result: its rows and first and last bar, or that it failed."""
    if frame is None:
        return "failed (see the message above)"
    return f"{len(frame)} rows, {frame.index[0]} -> {frame.index[-1]}"


def on_data(info: dict) -> None:
    """Callback of a successful request: a dict of ticker, resolution, rows, start_date, end_date, ..., data."""
    print(f"  callback: {info['ticker']} {info['resolution']} {info['rows']} rows from {info['source']}")


def on_error(error: dict) -> None:
    """Callback of a failed request: a dict of code, message, ticker, ..."""
    print(f"  error callback: {error['ticker']} {error['code']}: {error['message']}")


def on_progress(update: dict) -> None:
    """Called as each ticker of a batch finishes, in order: progress 'i/n', ticker, status, rows, ..."""
    print(f"  progress {update['progress']} {update['ticker']} {update['status']}")


def main() -> None:
    provider = DataProviderLocal()
    print(f"server: {provider.url}")

    print("One ticker, one year of daily bars:")
    df = provider.get_data_socket(
        ticker="BTC-USD", resolution=DataResolution.DAY_01, period=DataPeriod.YEAR_01, local_only=True
    )
    print(f"BTC-USD 1d 1y: {describe(df)}")

    print("The last 100 hourly bars of a month, with callbacks:")
    df = provider.get_data_socket(
        ticker="ETH-USD",
        resolution=DataResolution.HOUR_01,
        period=DataPeriod.MONTH_01,
        limit=100,
        local_only=True,
        callback=on_data,
        error_callback=on_error,
    )
    print(f"ETH-USD 1h 1mo limit 100: {describe(df)}")

    print("A ticker the cache does not hold (local_only never downloads it):")
    df = provider.get_data_socket("MSFT", "1d", "1y", local_only=True, error_callback=on_error)
    print(f"MSFT 1d 1y: {describe(df)}")

    print("Several tickers in one request:")
    results = provider.get_batch_data_socket(
        tickers=["BTC-USD", "ETH-USD", "SPY", "AAPL"],
        resolution=DataResolution.DAY_01,
        period=DataPeriod.YEAR_01,
        limit=100,
        local_only=True,
        progress_callback=on_progress,
    )
    for ticker, frame in results.items():
        print(f"batch {ticker}: {describe(frame)}")

    print("A date window on one connection kept open (start inclusive; an end date includes that day):")
    with DataProviderLocal() as dp:
        for ticker in ["SPY", "AAPL", "GOOG"]:
            frame = dp.get_data_socket(
                ticker,
                DataResolution.DAY_01,
                DataPeriod.YEAR_MAX,
                time_start=dt.date(2015, 1, 1),
                time_end=dt.date(2015, 12, 31),
                local_only=True,
            )
            print(f"{ticker} 2015: {describe(frame)}")

    instruments = provider.get_instruments_local()
    print(f"The cache holds {len(instruments)} datasets:")
    print(instruments[["ticker", "resolution", "rows", "first", "last"]].to_string(index=False))


if __name__ == "__main__":
    main()
