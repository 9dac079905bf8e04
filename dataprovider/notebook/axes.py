"""What the static and the live charts share: colours, candle directions, the time axis and its breaks, plotly.

Times go to plotly as local wall-clock times (tz-naive, in the frame's exchange
timezone). plotly.js drops UTC offsets from date strings and its rangebreaks
match wall-clock hours, so a 09:30 New York bar sits at 09:30 on the chart, and
the overnight, weekend and holiday breaks line up with the bars, whatever the
timezone of the viewer.

Nothing here imports plotly until :func:`plotly` is called.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from dataprovider.instruments import is_crypto

__all__ = [
    "DAY",
    "DOWN_COLOR",
    "LINE_COLORS",
    "UP_COLOR",
    "bar_step",
    "candle_directions",
    "check_frame",
    "plotly",
    "rangebreaks",
    "wall_clock",
    "wants_gaps_removed",
]

#: Colour of a rising candle and its volume bar.
UP_COLOR = "#26a69a"
#: Colour of a falling candle and its volume bar.
DOWN_COLOR = "#ef5350"
#: Colours of the line traces (moving averages, compared tickers), used in turn.
LINE_COLORS = ("#2962ff", "#ff9800", "#9c27b0", "#795548", "#607d8b", "#000000")
#: One day, the width of a daily bar.
DAY = pd.Timedelta(days=1)


def plotly() -> tuple[ModuleType, Any]:
    """Import plotly when a chart is made: ``(plotly.graph_objects, plotly.subplots.make_subplots)``.

    Raises ImportError saying how to install plotly when it is missing.
    """
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as exc:
        raise ImportError(
            "dataprovider's charts need plotly: install it with `pip install 'dataprovider[notebook]'` "
            "(or `pip install plotly`)"
        ) from exc
    return go, make_subplots


def check_frame(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ValueError, naming ``what``, unless ``df`` has bars, ``columns`` and a DatetimeIndex.

    Examples
    --------
    >>> check_frame(pd.DataFrame({"Close": [1.0]}), ("Open", "Close"), "candlestick")
    Traceback (most recent call last):
    ...
    ValueError: candlestick: the frame lacks column(s) Open; it has ['Close']
    """
    if len(df) == 0:
        raise ValueError(f"{what}: the frame is empty; there are no bars to draw")
    missing = [col for col in columns if col not in df.columns]
    if missing:
        raise ValueError(f"{what}: the frame lacks column(s) {', '.join(missing)}; it has {list(df.columns)}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError(f"{what}: the frame needs a DatetimeIndex; got {type(df.index).__name__}")


def candle_directions(df: pd.DataFrame) -> np.ndarray:
    """True where plotly draws a bar's candle in the increasing colour.

    plotly's rule: Close above Open is up and below is down; when Close equals
    Open the bar is up if Close is above the previous Close, down if below, and
    keeps the previous bar's direction if equal (the first bar counts as up).

    Examples
    --------
    >>> bars = pd.DataFrame({"Open": [1.0, 2.0, 2.0, 3.0], "Close": [2.0, 2.0, 1.0, 1.0]})
    >>> candle_directions(bars).tolist()
    [True, True, False, False]
    """
    close = df["Close"].to_numpy(dtype="float64")
    open_ = df["Open"].to_numpy(dtype="float64")
    previous = np.concatenate([[np.nan], close[:-1]])
    direction = np.where(close > open_, 1.0, np.where(close < open_, 0.0, np.nan))
    by_previous = np.isnan(direction) & ~np.isnan(previous) & (close != previous)
    direction[by_previous] = close[by_previous] > previous[by_previous]
    return pd.Series(direction).ffill().fillna(1.0).to_numpy(dtype=bool)


def wall_clock(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The index as tz-naive local times (a naive index is taken to be local already).

    Examples
    --------
    >>> wall_clock(pd.DatetimeIndex(["2019-11-05 14:30"], tz="UTC").tz_convert("America/New_York"))[0]
    Timestamp('2019-11-05 09:30:00')
    """
    return index.tz_localize(None) if index.tz is not None else index


def bar_step(wall: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The most common spacing between consecutive bars (the bar width), None for one bar.

    Any unit of the index will do (pandas 3 parses date strings to microseconds, parquet gives nanoseconds).

    Examples
    --------
    >>> bar_step(pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-08"]))
    Timedelta('1 days 00:00:00')
    >>> bar_step(pd.DatetimeIndex(["2024-01-02"])) is None
    True
    """
    if len(wall) < 2:
        return None
    return pd.Series(np.diff(wall.asi8)).mode().iloc[0] * pd.Timedelta(1, wall.unit)


def wants_gaps_removed(gaps: bool | str, wall: pd.DatetimeIndex, ticker: str | None) -> bool:
    """Whether to draw rangebreaks: ``gaps`` if a bool; for 'auto', unless crypto or a bar falls on a weekend.

    Examples
    --------
    >>> weekdays = pd.DatetimeIndex(["2024-01-05", "2024-01-08"])
    >>> wants_gaps_removed("auto", weekdays, "SPY"), wants_gaps_removed("auto", weekdays, "BTC-USD")
    (True, False)
    >>> wants_gaps_removed(False, weekdays, "SPY")
    False
    """
    if gaps == "auto":
        trades_every_day = bool((wall.dayofweek >= 5).any())
        return not trades_every_day and not (ticker is not None and is_crypto(ticker))
    if isinstance(gaps, bool):
        return gaps
    raise ValueError(f"gaps must be 'auto', True or False; got {gaps!r}")


def rangebreaks(wall: pd.DatetimeIndex, step: pd.Timedelta | None) -> list[dict]:
    """plotly rangebreaks removing weekends, bar-less weekdays and (intraday) the hours outside the session.

    The session runs from the earliest bar start to the latest bar end (start
    plus ``step``) over all days of ``wall``; bars wider than a day get none.

    Examples
    --------
    >>> days = pd.DatetimeIndex(["2015-12-23", "2015-12-24", "2015-12-28"])
    >>> rangebreaks(days, DAY)
    [{'bounds': ['sat', 'mon']}, {'values': ['2015-12-25']}]
    >>> hours = pd.DatetimeIndex(["2019-11-05 09:30", "2019-11-05 15:00"])
    >>> rangebreaks(hours, pd.Timedelta(hours=1))[-1]
    {'bounds': [16.0, 9.5], 'pattern': 'hour'}
    """
    if step is None or step > DAY:
        return []
    days = wall.normalize().unique()
    holidays = pd.bdate_range(days[0], days[-1]).difference(days)
    breaks: list[dict] = [dict(bounds=["sat", "mon"])]
    if len(holidays):
        breaks.append(dict(values=list(holidays.strftime("%Y-%m-%d"))))
    if step < DAY:
        time_of_day = wall - wall.normalize()
        session_open, session_close = time_of_day.min(), (time_of_day + step).max()
        if session_open > pd.Timedelta(0) or session_close < DAY:
            breaks.append(dict(bounds=[_hours(session_close), _hours(session_open)], pattern="hour"))
    return breaks


def _hours(offset: pd.Timedelta) -> float:
    return offset.total_seconds() / 3600
