"""What a request for bars asks for, and the rules that turn it into a window of rows.

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

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bars import Bars
from .enums import DataPeriod, DataResolution

__all__ = ["TIME_BOUND_PATTERN", "BarsQuery", "TimeBound", "Window", "select_window"]

# Calendar days that surely hold N trading days (weekends, holiday clusters).
_TRADING_DAY_SPAN = 4
_TRADING_DAY_SLACK = pd.Timedelta(days=10)
# How far back from ``time_end`` the last bar before it may lie (weekends, holidays).
_END_SLACK = pd.Timedelta(days=14)


#: How a time bound is written: ``YYYY-MM-DD`` (a whole day), or a date and time with an
#: optional UTC offset. Python and JSON Schema (ECMA-262) read it alike.
TIME_BOUND_PATTERN = (
    r"\d{4}-\d{2}-\d{2}"  # the date; on its own, a whole day
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"  # time, seconds, fraction
    r"(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"  # UTC offset
)
_TIME_BOUND_RE = re.compile(TIME_BOUND_PATTERN, re.ASCII)
_DATE_LENGTH = len("YYYY-MM-DD")


@dataclass(frozen=True)
class TimeBound:
    """A user's time_start or time_end: an instant, or a whole day when ``date_only``."""

    value: pd.Timestamp
    date_only: bool

    @classmethod
    def parse(cls, value: object) -> TimeBound:
        """Parse a date, datetime, pandas Timestamp or ISO-8601 string.

        Strings are taken exactly as written (nothing is trimmed) and must be
        ``YYYY-MM-DD`` (a whole day) or ``YYYY-MM-DDTHH:MM[:SS[.fraction]]``
        with 'T' or a space, optionally ending in ``Z`` or an offset ``±HH[:MM]``;
        other spellings pandas would guess at ('01/02/2015', 'now', '2015') are
        refused.

        Raises
        ------
        ValueError
            If the value is of another type, is not written that way, or is no
            real date (pandas' reason, such as 'day is out of range for month').
            ``pandas.errors.OutOfBoundsDatetime`` (a ValueError) for a year
            pandas cannot hold.

        Examples
        --------
        >>> TimeBound.parse("2015-01-01").date_only
        True
        >>> TimeBound.parse(dt.datetime(2015, 1, 1, 9, 30)).date_only
        False
        >>> TimeBound.parse("2015-01-01T14:30:00Z").value
        Timestamp('2015-01-01 14:30:00+0000', tz='UTC')
        """
        if isinstance(value, TimeBound):
            return value
        if isinstance(value, pd.Timestamp | dt.datetime):
            return cls(pd.Timestamp(value), date_only=False)
        if isinstance(value, dt.date):
            return cls(pd.Timestamp(value), date_only=True)
        if isinstance(value, str):
            if _TIME_BOUND_RE.fullmatch(value) is None:
                raise ValueError("not in an accepted format")
            return cls(pd.Timestamp(value), date_only=len(value) == _DATE_LENGTH)
        raise ValueError(f"expected a date, datetime or ISO-8601 string, got {type(value).__name__}")

    def start_instant(self, tz: str) -> pd.Timestamp:
        """The first instant this bound admits, as a window start."""
        return _localize(self.value.normalize() if self.date_only else self.value, tz)

    def end_instant(self, tz: str) -> pd.Timestamp:
        """The first instant past this bound, as an exclusive window end."""
        if self.date_only:
            return _localize(self.value.normalize() + pd.Timedelta(days=1), tz)
        return _localize(self.value, tz) + pd.Timedelta(microseconds=1)

    def isoformat(self) -> str:
        """The bound as an ISO string ('YYYY-MM-DD' for whole days)."""
        return self.value.date().isoformat() if self.date_only else self.value.isoformat()


def _localize(stamp: pd.Timestamp, tz: str) -> pd.Timestamp:
    if stamp.tzinfo is None:
        return stamp.tz_localize(tz, ambiguous=False, nonexistent="shift_forward")
    return stamp.tz_convert(tz)


@dataclass(frozen=True)
class BarsQuery:
    """One validated request for the bars of one ticker.

    Build it through :func:`dataprovider.protocol.parse_data_request` (which
    validates a wire payload) or directly in library code.
    """

    ticker: str
    resolution: DataResolution
    period: DataPeriod = DataPeriod.YEAR_01
    time_start: TimeBound | None = None
    time_end: TimeBound | None = None
    limit: int | None = None
    local_only: bool = False

    def for_ticker(self, ticker: str) -> BarsQuery:
        """The same query for another ticker (batches share everything else)."""
        return BarsQuery(
            ticker, self.resolution, self.period, self.time_start, self.time_end, self.limit, self.local_only
        )


@dataclass(frozen=True)
class Window:
    """Half-open time bounds ``[start, end)`` (None: unbounded)."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None


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
    return anchor - period.offset


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
    bars = read(lookback_start(query, anchor), end)
    if query.time_start is None and len(bars):
        bars = _trim_to_period(bars, query.period, anchor)
    if query.limit is not None:
        bars = bars.tail(query.limit)
    return bars


def _trim_to_period(bars: Bars, period: DataPeriod, anchor: pd.Timestamp) -> Bars:
    if period.trading_days is not None:
        dates = bars.local_dates()
        first_kept = np.unique(dates)[-period.trading_days :][0]
        return bars.tail(len(dates) - int(np.searchsorted(dates, first_kept)))
    if period.offset is not None:
        return bars.between(anchor - period.offset + pd.Timedelta(1, "ns"), None)
    return bars
