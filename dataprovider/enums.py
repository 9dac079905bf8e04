"""Bar resolutions and look-back periods, and the parsing of their string forms.

Both enums are ``StrEnum`` subclasses whose values are the strings Yahoo Finance and
yfinance use ('1d', '1y', ...), so ``DataResolution.DAY_01 == '1d'`` holds and
anywhere the library takes an enum it also takes the string value.
"""

from __future__ import annotations

from enum import StrEnum

import pandas as pd

__all__ = ["DataPeriod", "DataResolution"]


class _ParsableEnum(StrEnum):
    """A string enum that parses its own values, with an error listing them."""

    @classmethod
    def parse(cls, value: object):
        """Return the member for ``value`` (a member or its string value).

        Raises
        ------
        ValueError
            If ``value`` is not a member or a member's value; the message lists
            the allowed values.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip())
            except ValueError:
                pass
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{cls.__name__} must be one of {allowed}; got {value!r}")

    @classmethod
    def values(cls) -> list[str]:
        """The allowed string values, in declaration order."""
        return [m.value for m in cls]


class DataResolution(_ParsableEnum):
    """The width of one price bar.

    Examples
    --------
    >>> DataResolution.parse("1h") is DataResolution.HOUR_01
    True
    >>> DataResolution.DAY_01.is_intraday, DataResolution.DAY_01 == "1d"
    (False, True)
    >>> DataResolution.HOUR_01.minutes, DataResolution.HOUR_01.index_name
    (60, 'Datetime')
    """

    MINUTE_01 = "1m"
    MINUTE_02 = "2m"
    MINUTE_05 = "5m"
    MINUTE_15 = "15m"
    MINUTE_30 = "30m"
    HOUR_01 = "1h"
    DAY_01 = "1d"
    WEEK_01 = "1wk"
    MONTH_01 = "1mo"

    @property
    def is_intraday(self) -> bool:
        """True for bars shorter than a day."""
        return self in _INTRADAY_MINUTES

    @property
    def minutes(self) -> int | None:
        """Bar width in minutes for intraday resolutions, else None."""
        return _INTRADAY_MINUTES.get(self)

    @property
    def nominal_duration(self) -> pd.Timedelta:
        """Typical bar width (a month counts as 31 days), for staleness checks."""
        return _NOMINAL_DURATION[self]

    @property
    def index_name(self) -> str:
        """'Datetime' for intraday bars and 'Date' otherwise, as yfinance names them."""
        return "Datetime" if self.is_intraday else "Date"


class DataPeriod(_ParsableEnum):
    """How far back from the end of the requested window to reach.

    ``DAY_01`` and ``DAY_05`` count trading days (dates that have bars), the
    others count calendar time; ``YTD`` starts on 1 January of the end's year
    and ``YEAR_MAX`` means all available history.

    Examples
    --------
    >>> DataPeriod.parse("5d").trading_days
    5
    >>> pd.Timestamp("2024-03-15") - DataPeriod.YEAR_01.offset
    Timestamp('2023-03-15 00:00:00')
    >>> DataPeriod.parse("1 year")
    Traceback (most recent call last):
    ...
    ValueError: DataPeriod must be one of '1d', '5d', '1mo', '3mo', '6mo', '1y', '2y', '5y', '10y', 'ytd', 'max'; ...
    """

    DAY_01 = "1d"
    DAY_05 = "5d"
    MONTH_01 = "1mo"
    MONTH_03 = "3mo"
    MONTH_06 = "6mo"
    YEAR_01 = "1y"
    YEAR_02 = "2y"
    YEAR_05 = "5y"
    YEAR_10 = "10y"
    YTD = "ytd"
    YEAR_MAX = "max"

    @property
    def trading_days(self) -> int | None:
        """Number of trading days for DAY_01/DAY_05, else None."""
        return {DataPeriod.DAY_01: 1, DataPeriod.DAY_05: 5}.get(self)

    @property
    def offset(self) -> pd.DateOffset | None:
        """Calendar length for MONTH_*/YEAR_* periods, else None."""
        return _CALENDAR_OFFSETS.get(self)


_INTRADAY_MINUTES = {
    DataResolution.MINUTE_01: 1,
    DataResolution.MINUTE_02: 2,
    DataResolution.MINUTE_05: 5,
    DataResolution.MINUTE_15: 15,
    DataResolution.MINUTE_30: 30,
    DataResolution.HOUR_01: 60,
}

_NOMINAL_DURATION = {
    **{res: pd.Timedelta(minutes=m) for res, m in _INTRADAY_MINUTES.items()},
    DataResolution.DAY_01: pd.Timedelta(days=1),
    DataResolution.WEEK_01: pd.Timedelta(days=7),
    DataResolution.MONTH_01: pd.Timedelta(days=31),
}

_CALENDAR_OFFSETS = {
    DataPeriod.MONTH_01: pd.DateOffset(months=1),
    DataPeriod.MONTH_03: pd.DateOffset(months=3),
    DataPeriod.MONTH_06: pd.DateOffset(months=6),
    DataPeriod.YEAR_01: pd.DateOffset(years=1),
    DataPeriod.YEAR_02: pd.DateOffset(years=2),
    DataPeriod.YEAR_05: pd.DateOffset(years=5),
    DataPeriod.YEAR_10: pd.DateOffset(years=10),
}
