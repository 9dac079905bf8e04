"""Refresh planning: what to download for a query, and how a download joins the cache.

Pure functions on the store's dataset facts and on frames: no IO, no locks, so
each rule can be tested on its own. :class:`~dataprovider.engine.service.DataService`
calls them while it holds the dataset's lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dataprovider.engine.datasets import DatasetInfo
from dataprovider.engine.window import lookback_start
from dataprovider.enums import DataResolution
from dataprovider.frames import PRICE_COLUMNS, bar_ends
from dataprovider.protocol.query import BarsQuery
from dataprovider.sources.base import FetchResult

__all__ = [
    "ADJUSTMENT_TOLERANCE",
    "RefreshPolicy",
    "coverage_start",
    "first_difference",
    "first_day_start",
    "forming_from",
    "history_gap",
    "merge",
    "needs_tail_refresh",
    "readjusted",
]

#: Relative difference between a cached bar and the same bar downloaded again
#: above which the history is taken to have been re-adjusted (split, dividend).
ADJUSTMENT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class RefreshPolicy:
    """How eagerly the cache is brought up to date from the source.

    Attributes
    ----------
    min_interval_intraday, min_interval_daily : pandas.Timedelta
        A dataset is not asked for again sooner than this after the last time.
    overlap_bars : int
        How many final bars before the newest are downloaded again, to catch
        re-adjusted history.
    """

    min_interval_intraday: pd.Timedelta = pd.Timedelta(minutes=1)
    min_interval_daily: pd.Timedelta = pd.Timedelta(minutes=5)
    overlap_bars: int = 5

    def min_interval(self, resolution: DataResolution) -> pd.Timedelta:
        """The minimum time between two downloads of one dataset."""
        return self.min_interval_intraday if resolution.is_intraday else self.min_interval_daily


def history_gap(info: DatasetInfo | None, query: BarsQuery) -> tuple[bool, pd.Timestamp | None]:
    """Whether the query reaches back before what the cache covers, and from when."""
    if info is None or not info.rows or info.meta.history_complete:
        return False, None
    start = lookback_start(query, info.last)
    return start is None or start < (info.meta.coverage_start or info.first), start


def needs_tail_refresh(
    info: DatasetInfo | None, query: BarsQuery, now: pd.Timestamp, checked: pd.Timestamp | None, interval: pd.Timedelta
) -> bool:
    """Whether newer bars may exist that the query could need.

    Not when the query ends before the newest cached bar, nor sooner than
    ``interval`` after the source was last asked (the dataset's last download,
    or ``checked``: the last time the source answered that nothing was new);
    otherwise yes when the newest bar was still forming or a new bar may have
    started since.
    """
    if info is None or info.rows == 0:
        return True
    if query.time_end is not None and query.time_end.end_instant(info.meta.timezone) <= info.last:
        return False
    last_asked = max([t for t in (info.meta.last_fetched, checked) if t is not None], default=None)
    if last_asked is not None and now - last_asked < interval:
        return False
    last_end = bar_ends(pd.DatetimeIndex([info.last]), info.resolution)[0]
    return info.meta.forming_from is not None or now >= last_end


def first_day_start(frame: pd.DataFrame) -> pd.Timestamp:
    """Local midnight of the first bar's day (UTC): a file is taken to hold its first day whole."""
    return frame.index[0].normalize().tz_convert("UTC")


def merge(old: pd.DataFrame, new: pd.DataFrame, replace_from: pd.Timestamp) -> pd.DataFrame:
    """``old`` with ``new``'s bars from ``replace_from`` on: a bar of ``new`` wins over ``old``'s at its time.

    Bars of ``old`` that ``new`` lacks are kept: a source that no longer serves
    a bar never takes it out of the cache.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC", name="Date")
    >>> old = pd.DataFrame({"Close": [1.0, 2.0, 3.0]}, index=idx)
    >>> new = pd.DataFrame({"Close": [2.5, 4.0]}, index=idx[1:].shift(1, "D"))
    >>> merge(old, new, idx[1])["Close"].tolist()
    [1.0, 2.0, 2.5, 4.0]
    """
    merged = pd.concat([old, new[new.index >= replace_from]])
    merged = merged[~merged.index.duplicated(keep="last")]
    return merged.sort_index(kind="stable")


def first_difference(old: pd.DataFrame, new: pd.DataFrame) -> pd.Timestamp | None:
    """The time of the first bar where ``new`` differs from ``old`` (same columns), or None if ``new``
    only adds bars after ``old``'s.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC", name="Date")
    >>> old = pd.DataFrame({"Close": [1.0, 2.0]}, index=idx[:2])
    >>> first_difference(old, pd.DataFrame({"Close": [1.0, 2.0, 3.0]}, index=idx)) is None
    True
    >>> str(first_difference(old, pd.DataFrame({"Close": [1.0, 2.5, 3.0]}, index=idx)).date())
    '2024-01-02'
    """
    head = new.iloc[: len(old)]
    if head.index.equals(old.index) and head.equals(old):
        return None
    same_time = head.index == old.index[: len(head)]
    same_values = (head.to_numpy() == old.iloc[: len(head)].to_numpy()).all(axis=1)
    differs = ~(same_time & same_values)
    position = int(np.argmax(differs)) if differs.any() else len(head)
    if position < len(new) and position < len(old):
        return min(new.index[position], old.index[position])
    return new.index[position] if position < len(new) else old.index[position]


def readjusted(final: pd.DataFrame, new: pd.DataFrame, actions: pd.DataFrame) -> bool:
    """Whether the source re-adjusted history: overlapping final bars differ, or a split/dividend came."""
    if len(actions) and len(final) and (actions.index > final.index[-1]).any():
        return True
    common = final.index.intersection(new.index)
    if common.empty:
        return False
    old_prices = final.loc[common, list(PRICE_COLUMNS)].to_numpy()
    new_prices = new.loc[common, list(PRICE_COLUMNS)].to_numpy()
    return not np.allclose(old_prices, new_prices, rtol=ADJUSTMENT_TOLERANCE, atol=0.0)


def forming_from(frame: pd.DataFrame, resolution: DataResolution, now: pd.Timestamp) -> pd.Timestamp | None:
    """Start (UTC) of the first bar not yet closed at ``now``, or None if all are final."""
    if frame.empty:
        return None
    ends = bar_ends(frame.index, resolution)
    open_bars = frame.index[ends > now]
    return open_bars[0].tz_convert("UTC") if len(open_bars) else None


def coverage_start(start: pd.Timestamp | None, fetched: FetchResult) -> pd.Timestamp:
    """From when the cache holds everything the source has, after downloading from ``start``."""
    first = fetched.frame.index[0].tz_convert("UTC") if len(fetched.frame) else None
    candidates = [t for t in (start, fetched.available_from) if t is not None]
    if not candidates:
        return first
    return max(candidates) if first is None else min(max(candidates), first)
