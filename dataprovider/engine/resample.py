"""Deriving coarser OHLCV bars from finer cached ones.

Bars are aggregated per bin: Open of the first bar, High max, Low min, Close of
the last bar, Volume sum. Bins are labelled by their start, as Yahoo Finance
labels its bars, on the wall clock of the frame's (exchange) timezone:

* ``1d``: local midnight of the bar's local date;
* ``1wk``: local midnight of the Monday of the bar's week;
* ``1mo``: local midnight of the first of the bar's month;
* intraday: the bin start, on a grid of the target width anchored to the
  session. The anchor is the time of day of the first bar of each local day
  (09:30 for New York equities, 00:00 for crypto in UTC), modulo the target
  width, taking the most common value over the days in the frame (ties go to
  the value seen at the earliest time of day). So US-equity ``1h`` bins start
  at 09:30, 10:30, ... 15:30 and crypto ``1h`` bins on the hour. A session that
  runs across local midnight is anchored by the first bar after midnight.

No bin crosses local midnight: a bin whose grid start falls on the previous day
starts at midnight instead. Within the repeated hour of a DST fall-back, a bar
whose wall-clock bin start lies before the previous bar's bin joins that
previous bin, so bins stay in time order.

Derivation table (``can_resample``): a target can be built from a source when
every target bin is a union of whole source bins.

======  ==========================================
source  targets
======  ==========================================
1m      2m 5m 15m 30m 1h 1d 1wk 1mo
2m      30m 1h 1d 1wk 1mo  (2 does not divide 5 or 15)
5m      15m 30m 1h 1d 1wk 1mo
15m     30m 1h 1d 1wk 1mo
30m     1h 1d 1wk 1mo
1h      1d 1wk 1mo
1d      1wk 1mo
1wk     none (weeks do not tile months)
1mo     none
======  ==========================================

Derived bars aggregate the bars they are made of, so they can differ from the
bars an exchange publishes at the coarser resolution: an official daily close
is the closing auction price, not the close of the last one-minute bar, and
intraday volumes need not add up to the daily volume.
"""

from __future__ import annotations

import logging
from datetime import tzinfo

import numpy as np
import pandas as pd

from dataprovider.enums import DataResolution
from dataprovider.errors import InvalidRequestError
from dataprovider.frames import empty_frame

__all__ = ["can_resample", "derivation_sources", "resample_bars"]

logger = logging.getLogger(__name__)

_NS_PER_MINUTE = 60 * 1_000_000_000


def can_resample(source: DataResolution | str, target: DataResolution | str) -> bool:
    """Whether ``target`` bars can be built exactly from ``source`` bars.

    True when ``target`` is coarser and each of its bins is a union of whole
    ``source`` bins: intraday to a multiple of its width, intraday to daily and
    coarser, daily to weekly and monthly. Weekly and monthly bars derive nothing.

    Examples
    --------
    >>> can_resample("5m", "1h"), can_resample("2m", "15m"), can_resample("1wk", "1mo")
    (True, False, False)
    """
    source = DataResolution.parse(source)
    target = DataResolution.parse(target)
    if source.is_intraday and target.is_intraday:
        return target.minutes > source.minutes and target.minutes % source.minutes == 0
    if source.is_intraday:
        return True
    if source is DataResolution.DAY_01:
        return target in (DataResolution.WEEK_01, DataResolution.MONTH_01)
    return False


def derivation_sources(target: DataResolution | str) -> list[DataResolution]:
    """The resolutions ``target`` can be derived from, coarsest (cheapest to read) first.

    Examples
    --------
    >>> [str(r) for r in derivation_sources("15m")]
    ['5m', '1m']
    >>> derivation_sources("1m")
    []
    """
    target = DataResolution.parse(target)
    return [source for source in reversed(DataResolution) if can_resample(source, target)]


def resample_bars(
    frame: pd.DataFrame,
    source: DataResolution | str,
    target: DataResolution | str,
    *,
    coverage_start: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Aggregate a canonical ``source`` frame into canonical ``target`` bars.

    Parameters
    ----------
    frame : DataFrame
        A canonical frame (see :mod:`dataprovider.frames`) of ``source`` bars,
        indexed in the exchange timezone.
    source, target : DataResolution or str
        The resolution of ``frame`` and the one wanted; ``can_resample(source,
        target)`` must hold.
    coverage_start : Timestamp or str, optional
        The earliest instant from which ``frame`` is known to hold every bar
        there is (a naive value is read in the frame's timezone). Bins that
        start before it may be incomplete and are dropped. Without it every bin
        is kept. The last bin is always kept, even when it is still forming.

    Returns
    -------
    DataFrame
        A canonical frame in the same timezone, index named for ``target``, one
        row per bin that holds at least one bar.

    Raises
    ------
    InvalidRequestError
        If ``target`` cannot be derived from ``source`` (code INVALID_RESOLUTION).
    ValueError
        If the index of ``frame`` is not tz-aware and increasing.

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-02-29", "2024-03-01", "2024-03-04"],
    ...                        tz="America/New_York", name="Date")
    >>> bars = pd.DataFrame({"Open": [1.0, 2, 3], "High": [2.0, 3, 4], "Low": [0.5, 1, 2],
    ...                      "Close": [1.5, 2.5, 3.5], "Volume": [10, 20, 30]}, index=idx)
    >>> resample_bars(bars, "1d", "1wk")  # doctest: +NORMALIZE_WHITESPACE
                               Open  High  Low  Close  Volume
    Date
    2024-02-26 00:00:00-05:00   1.0   3.0  0.5    2.5      30
    2024-03-04 00:00:00-05:00   3.0   4.0  2.0    3.5      30
    """
    source = DataResolution.parse(source)
    target = DataResolution.parse(target)
    if not can_resample(source, target):
        allowed = ", ".join(str(r) for r in derivation_sources(target)) or "none"
        raise InvalidRequestError(
            f"{target} bars cannot be derived from {source} bars; {target} can be derived from: {allowed}",
            code="INVALID_RESOLUTION",
            field="resolution",
            details={"source": str(source), "target": str(target)},
        )
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None or not index.is_monotonic_increasing:
        raise ValueError(
            "resample_bars needs a canonical frame: a tz-aware, increasing DatetimeIndex "
            "(use dataprovider.frames.normalize_frame first)"
        )
    if frame.empty:
        return empty_frame(target, str(index.tz))
    index = index.as_unit("ns")
    starts = _bin_starts(index, target)
    first = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    last = np.r_[first[1:] - 1, len(starts) - 1]
    out = pd.DataFrame(
        {
            "Open": frame["Open"].to_numpy(dtype="float64")[first],
            "High": np.fmax.reduceat(frame["High"].to_numpy(dtype="float64"), first),
            "Low": np.fmin.reduceat(frame["Low"].to_numpy(dtype="float64"), first),
            "Close": frame["Close"].to_numpy(dtype="float64")[last],
            "Volume": np.add.reduceat(frame["Volume"].to_numpy(dtype="int64"), first),
        },
        index=pd.to_datetime(starts[first], unit="ns", utc=True).tz_convert(index.tz).rename(target.index_name),
    )
    if coverage_start is not None:
        out = out[out.index >= _as_instant(coverage_start, index.tz)]
    logger.debug("resampled %d %s bars into %d %s bars", len(frame), source, len(out), target)
    return out


def _bin_starts(index: pd.DatetimeIndex, target: DataResolution) -> np.ndarray:
    """The start of each bar's target bin, as UTC nanoseconds, non-decreasing."""
    wall = index.tz_localize(None)
    days = wall.normalize()
    if target is DataResolution.DAY_01:
        naive = days
    elif target is DataResolution.WEEK_01:
        naive = days - pd.to_timedelta(days.dayofweek, unit="D")
    elif target is DataResolution.MONTH_01:
        naive = days - pd.to_timedelta(days.day - 1, unit="D")
    else:
        naive = days + pd.to_timedelta(_intraday_bin_offsets(wall, days, target.minutes), unit="ns")
    return _localize_at_or_before(naive, index)


def _intraday_bin_offsets(wall: pd.DatetimeIndex, days: pd.DatetimeIndex, minutes: int) -> np.ndarray:
    """Nanoseconds from local midnight to each bar's bin start, never negative."""
    width = minutes * _NS_PER_MINUTE
    time_of_day = (wall - days).asi8
    day_firsts = time_of_day[np.r_[True, days.asi8[1:] != days.asi8[:-1]]]
    residues = day_firsts % width
    _, which, counts = np.unique(residues, return_inverse=True, return_counts=True)
    # Most common residue first, then the one seen earliest in a day.
    anchor = residues[np.lexsort((day_firsts, -counts[which]))[0]]
    return np.maximum((time_of_day - anchor) // width * width + anchor, 0)


def _localize_at_or_before(naive: pd.DatetimeIndex, index: pd.DatetimeIndex) -> np.ndarray:
    """Place local wall-clock bin starts in ``index``'s timezone, as UTC nanoseconds.

    A wall time repeated by a DST fall-back takes the latest of its instants
    that is not after the bar; one skipped by a spring-forward moves to the end
    of the gap. The result is made non-decreasing (see the module docstring).
    """
    n = len(naive)
    dst = naive.tz_localize(index.tz, ambiguous=np.ones(n, bool), nonexistent="shift_forward")
    std = naive.tz_localize(index.tz, ambiguous=np.zeros(n, bool), nonexistent="shift_forward")
    starts = np.where(std.asi8 <= index.asi8, std.asi8, dst.asi8)
    return np.maximum.accumulate(starts)


def _as_instant(value: pd.Timestamp | str, tz: tzinfo) -> pd.Timestamp:
    """``value`` as a tz-aware Timestamp; a naive one is read in ``tz``."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(tz) if stamp.tzinfo is None else stamp
