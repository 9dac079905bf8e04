"""The shape every OHLCV frame in the project takes, and the function that gives it that shape.

A canonical frame is what yfinance returns: a tz-aware ``DatetimeIndex`` in the
instrument's exchange timezone (``datetime64[ns, tz]``), sorted and unique, named
'Date' for daily and coarser bars and 'Datetime' for intraday bars, with the
columns Open, High, Low, Close (float64) and Volume (int64).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dataprovider.enums import DataResolution

__all__ = ["OHLCV_COLUMNS", "PRICE_COLUMNS", "bar_ends", "empty_frame", "normalize_frame"]

PRICE_COLUMNS = ("Open", "High", "Low", "Close")
OHLCV_COLUMNS = (*PRICE_COLUMNS, "Volume")


def empty_frame(resolution: DataResolution, timezone: str = "UTC") -> pd.DataFrame:
    """A canonical frame with no rows.

    Examples
    --------
    >>> frame = empty_frame(DataResolution.HOUR_01)
    >>> frame.index.name, str(frame.index.dtype), frame.dtypes.astype(str).tolist()
    ('Datetime', 'datetime64[ns, UTC]', ['float64', 'float64', 'float64', 'float64', 'int64'])
    """
    index = pd.DatetimeIndex([], dtype=f"datetime64[ns, {timezone}]", name=resolution.index_name)
    frame = pd.DataFrame({col: pd.Series(dtype="float64") for col in PRICE_COLUMNS}, index=index)
    frame["Volume"] = pd.Series(dtype="int64")
    return frame


def normalize_frame(frame: pd.DataFrame, resolution: DataResolution, timezone: str) -> pd.DataFrame:
    """Return ``frame`` in canonical form for ``resolution`` in ``timezone``.

    Keeps only the OHLCV columns, drops rows without a Close, casts prices to
    float64 and Volume to int64 (missing volume counts as 0), converts a tz-aware
    index to ``timezone`` (a naive index is taken to be in ``timezone`` already),
    sorts it and keeps the last row of any duplicated timestamp.

    Raises
    ------
    KeyError
        If one of Open, High, Low, Close or Volume is missing.

    Examples
    --------
    A naive, unsorted frame with a duplicated day, a row without a Close and an extra column:

    >>> raw = pd.DataFrame({"Open": [3, 1, 2, 2], "High": [3, 1, 2, 2], "Low": [3, 1, 2, 2],
    ...                     "Close": [3.0, 1.0, None, 2.5], "Volume": [300, 100, 200, None], "Dividends": 0.0},
    ...                    index=pd.to_datetime(["2024-01-04", "2024-01-02", "2024-01-03", "2024-01-04"]))
    >>> frame = normalize_frame(raw, DataResolution.DAY_01, "America/New_York")
    >>> frame.index.strftime("%Y-%m-%d").tolist(), frame["Close"].tolist(), frame["Volume"].tolist()
    (['2024-01-02', '2024-01-04'], [1.0, 2.5], [100, 0])
    >>> frame.index.name, str(frame.index.dtype), frame.columns.tolist()
    ('Date', 'datetime64[ns, America/New_York]', ['Open', 'High', 'Low', 'Close', 'Volume'])
    """
    out = frame.loc[:, list(OHLCV_COLUMNS)].copy()
    index = pd.DatetimeIndex(out.index)
    index = index.tz_localize(timezone) if index.tz is None else index.tz_convert(timezone)
    out.index = pd.DatetimeIndex(index.as_unit("ns"), freq=None, name=resolution.index_name)
    out = out[out["Close"].notna()]
    for col in PRICE_COLUMNS:
        out[col] = out[col].astype("float64")
    volume = pd.to_numeric(out["Volume"], errors="coerce").fillna(0)
    out["Volume"] = np.round(volume.to_numpy(dtype="float64")).astype("int64")
    out = out[~out.index.duplicated(keep="last")]
    return out.sort_index(kind="stable")


def bar_ends(index: pd.DatetimeIndex, resolution: DataResolution) -> pd.DatetimeIndex:
    """When each bar of ``index`` closes: start plus the bar width, in local calendar terms.

    A daily bar closes at the next local midnight, a weekly one a week after its
    Monday, a monthly one on the first of the next month.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-31"], tz="America/New_York")
    >>> bar_ends(idx, DataResolution.MONTH_01)[0].isoformat()
    '2024-02-01T00:00:00-05:00'
    """
    if resolution.is_intraday:
        return index + pd.Timedelta(minutes=resolution.minutes)
    if resolution is DataResolution.MONTH_01:
        return index.normalize() + pd.offsets.MonthBegin(1)
    days = 7 if resolution is DataResolution.WEEK_01 else 1
    naive = index.tz_localize(None).normalize() + pd.Timedelta(days=days)
    return naive.tz_localize(index.tz, ambiguous=False, nonexistent="shift_forward")
