"""The rules that turn a query into a window of rows of a dataset.

The rules, applied in this order:

1. **End.** ``time_end`` if given, else the newest bar available. A date (or a
   'YYYY-MM-DD' string) includes that whole day in the exchange's timezone; a
   datetime includes bars starting at or before that instant.
2. **Start.** ``time_start`` if given (inclusive: a date means that day's local
   midnight). Otherwise ``period`` counts back from the last bar at or before the
   end: ``1d``/``5d`` keep the last 1/5 trading days (dates that have bars),
   ``1mo`` ... ``10y`` keep bars later than that bar minus the calendar length,
   ``ytd`` starts on 1 January of that bar's year, ``max`` keeps everything.
   So cached history stays usable offline: a year of 2017 data answers ``1y``.
3. **Limit.** ``limit`` keeps the last N rows of the window.

Naive datetimes are taken to be in the exchange's timezone; tz-aware ones are
converted to it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd

from dataprovider.bars import Bars
from dataprovider.enums import DataPeriod
from dataprovider.protocol.query import BarsQuery

__all__ = ["lookback_start", "select_window"]

# Calendar days that surely hold N trading days (weekends, holiday clusters).
_TRADING_DAY_SPAN = 4
_TRADING_DAY_SLACK = pd.Timedelta(days=10)
# How far back from ``time_end`` the last bar before it may lie (weekends, holidays).
_END_SLACK = pd.Timedelta(days=14)


def lookback_start(query: BarsQuery, anchor: pd.Timestamp) -> pd.Timestamp | None:
    """An instant early enough to hold the query's whole window ending at ``anchor``.

    Used to plan reads and downloads before the exact window is known; the
    result is never later than the true window start.
    """
    tz = anchor.tz
    if query.time_start is not None:
        return query.time_start.start_instant(str(tz))
    period = query.period
    if period is DataPeriod.YEAR_MAX:
        return None
    if period is DataPeriod.YTD:
        return pd.Timestamp(year=anchor.year, month=1, day=1, tz=tz)
    if period.trading_days is not None:
        return anchor.normalize() - pd.Timedelta(days=_TRADING_DAY_SPAN * period.trading_days) - _TRADING_DAY_SLACK
    return _calendar_back(anchor, period)[0]


def select_window(
    read: Callable[[pd.Timestamp | None, pd.Timestamp | None], Bars], newest: pd.Timestamp, query: BarsQuery
) -> Bars:
    """Apply the module's rules to a dataset whose newest bar is ``newest``.

    Parameters
    ----------
    read : callable
        ``read(start, end)`` returns the dataset's bars with ``start <= t < end``
        (None: unbounded); only the bars the window can need are asked for.
    newest : pandas.Timestamp
        Start of the dataset's newest bar, tz-aware in the exchange timezone.
    query : BarsQuery
        The request.

    Returns
    -------
    Bars
        The bars of the window, after ``limit``.
    """
    tz = str(newest.tz)
    end = query.time_end.end_instant(tz) if query.time_end is not None else None
    if end is None or end > newest:
        anchor = newest
    else:
        recent = read(end - _END_SLACK, end)
        if not len(recent):
            recent = read(None, end)
        if not len(recent):
            return recent
        anchor = recent.last
    if query.time_start is None and query.period.offset is not None:
        # A calendar period keeps the bars later than the anchor minus its length.
        bars = read(_calendar_back(anchor, query.period)[1], end)
    else:
        bars = read(lookback_start(query, anchor), end)
        if query.time_start is None and query.period.trading_days is not None and len(bars):
            bars = _last_trading_days(bars, query.period.trading_days)
    if query.limit is not None:
        bars = bars.tail(query.limit)
    return bars


def _last_trading_days(bars: Bars, days: int) -> Bars:
    dates = bars.local_dates()
    first_kept = np.unique(dates)[-days:][0]
    return bars.tail(len(dates) - int(np.searchsorted(dates, first_kept)))


def _calendar_back(anchor: pd.Timestamp, period: DataPeriod) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``anchor`` minus the calendar length of ``period``, and the instant just after it."""
    return _calendar_back_from(anchor, str(anchor.tz), anchor.unit, period)


@functools.lru_cache(maxsize=1024)
def _calendar_back_from(
    anchor: pd.Timestamp, zone: str, unit: str, period: DataPeriod
) -> tuple[pd.Timestamp, pd.Timestamp]:
    # Remembered because DateOffset arithmetic costs about 30 us, and the requests for one dataset
    # share its newest bar. ``zone`` and ``unit`` are part of the key: Timestamps of one instant in
    # other timezones are equal, yet a calendar length counts back in each one's own wall time.
    start = anchor - period.offset
    return start, start + pd.Timedelta(1, "ns")
