"""What a request for bars asks for: a ticker, a resolution, a period or time bounds, a limit.

:class:`BarsQuery` is the typed request both sides share: the protocol validates
a wire payload into one (:func:`~dataprovider.protocol.requests.parse_data_request`)
and the engine answers it (:mod:`dataprovider.engine.window` has the rules that
turn it into a window of rows).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pandas as pd

from dataprovider.enums import DataPeriod, DataResolution

__all__ = ["TIME_BOUND_PATTERN", "BarsQuery", "TimeBound"]


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

    Build it through :func:`dataprovider.protocol.requests.parse_data_request` (which
    validates a wire payload) or directly in library code. ``local_only`` (default
    True) answers from the cache alone; ``local_only=False`` first downloads what
    the cache is missing.
    """

    ticker: str
    resolution: DataResolution
    period: DataPeriod = DataPeriod.YEAR_01
    time_start: TimeBound | None = None
    time_end: TimeBound | None = None
    limit: int | None = None
    local_only: bool = True

    def for_ticker(self, ticker: str) -> BarsQuery:
        """The same query for another ticker (batches share everything else)."""
        return BarsQuery(
            ticker, self.resolution, self.period, self.time_start, self.time_end, self.limit, self.local_only
        )
