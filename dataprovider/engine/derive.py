"""Bars of a resolution the cache lacks, derived from a finer one it holds (``source: 'resampled from ...'``).

The service picks the finest cached resolution that can build the one asked
for (:func:`derivation_sources`); these functions say what to read of it and cut
the query's window out of the resampled bars.
"""

from __future__ import annotations

import pandas as pd

from dataprovider.bars import Bars
from dataprovider.engine.datasets import DatasetInfo
from dataprovider.engine.resample import derivation_sources, resample_bars
from dataprovider.engine.window import lookback_start, select_window
from dataprovider.errors import NoDataError
from dataprovider.protocol.query import BarsQuery

__all__ = ["derivation_read_start", "derivation_sources", "derived_window"]


def derivation_read_start(query: BarsQuery, source: DatasetInfo) -> pd.Timestamp | None:
    """From when the finer bars are read: the window's look-back, one target bar earlier (None: all)."""
    start = lookback_start(query, source.last)
    return None if start is None else start - query.resolution.nominal_duration


def derived_window(frame: pd.DataFrame, source: DatasetInfo, query: BarsQuery, read_from: pd.Timestamp | None) -> Bars:
    """The query's window of ``frame`` (the finer bars read from ``read_from``) resampled to its resolution.

    A first bin that starts before what the finer dataset covers would be
    partial, so it is dropped (the coverage start is the later of the dataset's
    and ``read_from``).

    Raises
    ------
    NoDataError
        If no whole bar can be built.
    """
    coverage = source.meta.coverage_start if not source.meta.history_complete else None
    if read_from is not None:
        coverage = read_from if coverage is None else max(coverage, read_from)
    derived = resample_bars(frame, source.resolution, query.resolution, coverage_start=coverage)
    if derived.empty:
        raise NoDataError(f"no {query.resolution.value} bars for {query.ticker} in the cache", ticker=query.ticker)
    bars = Bars.from_frame(derived)
    return select_window(bars.between, bars.last, query)
