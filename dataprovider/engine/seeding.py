"""Filling the cache from files: the bundled sample data, and users' own files.

Both write under the dataset's lock, like a download does, so they are safe
beside a running server sharing the data directory.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from dataprovider.engine.datasets import DatasetInfo, DatasetMeta
from dataprovider.engine.refresh import first_day_start, merge
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataResolution

__all__ = ["import_frame", "seed"]


def seed(store: DeltaStore, datasets: Iterable[tuple[str, DataResolution, pd.DataFrame, str]], source: str) -> int:
    """Write each (ticker, resolution, frame, timezone) not yet cached; returns how many were written.

    Used to load the bundled sample data into an empty cache: existing
    datasets are never overwritten.
    """
    written = 0
    for ticker, resolution, frame, timezone in datasets:
        with store.lock(ticker, resolution):
            if store.info_if_readable(ticker, resolution) is not None:
                continue
            meta = DatasetMeta(timezone=timezone, source=source, coverage_start=first_day_start(frame))
            store.write(ticker, resolution, frame, meta)
            written += 1
    return written


def import_frame(
    store: DeltaStore, ticker: str, resolution: DataResolution, frame: pd.DataFrame, timezone: str
) -> DatasetInfo:
    """Merge bars from a user's file into the cache (the file wins where both have a bar)."""
    with store.lock(ticker, resolution):
        info = store.info_if_readable(ticker, resolution)
        old = None if info is None else store.bars_of(info).to_frame()
        merged = frame if old is None else merge(old.tz_convert(timezone), frame, frame.index[0])
        meta = DatasetMeta(timezone=timezone, source="import", coverage_start=first_day_start(merged))
        return store.write(ticker, resolution, merged, meta)
