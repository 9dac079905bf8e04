"""Storage goals, measured in this process on the engine itself (no server): appends and cold reads.

* Append: a refresh (``DataService.get_bars`` with ``local_only=False``) that finds one new
  one-minute bar at the source and commits it, on a 1,000,000-bar dataset beside the same
  refresh on a 10,000-bar one, in turns. The source serves generated bars from memory, as
  Yahoo serves them (the overlap from a few bars before the newest, up to "now"), so what is
  timed is the cache's work.
* Cold read: a 525,600-bar dataset read through a store with no memory cache, beside
  ``pd.read_parquet`` of one Parquet file of the same bars.
* Cold batch: 500 datasets of 252 daily bars read through a fresh store (nothing in memory),
  beside 500 ``pd.read_parquet`` calls on files of the same bars.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import datasets
from dataprovider.engine.refresh import RefreshPolicy
from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.protocol.query import BarsQuery
from dataprovider.sources.base import FetchResult

M1, D1 = DataResolution.MINUTE_01, DataResolution.DAY_01


class MemorySource:
    """Serves ``bars`` that started before ``now``; ``now`` moves one bar on with each :meth:`tick`."""

    name = "memory"

    def __init__(self, bars: pd.DataFrame, served: int) -> None:
        self.bars = bars
        self.position = served

    @property
    def now(self) -> pd.Timestamp:
        return self.bars.index[self.position]

    def tick(self) -> None:
        self.position += 1

    def fetch(self, ticker, resolution, start, end) -> FetchResult:
        lo = 0 if start is None else int(self.bars.index.searchsorted(start))
        return FetchResult(self.bars.iloc[lo : self.position], "UTC")


def _refresher(root: Path, ticker: str, rows: int, steps: int) -> Callable[[], object]:
    """A call that moves the source one bar on and refreshes the ``rows``-bar dataset ``ticker``."""
    bars = datasets.minutes_24x7(rows + steps + 1, seed=rows)
    datasets.write(root, ticker, M1, bars.iloc[:rows])
    source = MemorySource(bars, rows)
    policy = RefreshPolicy(min_interval_intraday=pd.Timedelta(0), min_interval_daily=pd.Timedelta(0))
    service = DataService(DeltaStore(root), source, policy=policy, clock=lambda: source.now)
    query = BarsQuery(ticker, M1, DataPeriod.DAY_01, limit=100, local_only=False)
    service.get_bars(query)  # the dataset in memory, as in a server that serves it

    def refresh() -> object:
        source.tick()
        return service.get_bars(query)

    return refresh


def _turns(fns: list[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Milliseconds of ``repeats`` calls of each of ``fns``, one call of each in turn."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, taken in zip(fns, times, strict=True):
            started = time.perf_counter()
            fn()
            taken.append((time.perf_counter() - started) * 1e3)
    return times


def measure(quick: bool) -> list[dict]:
    """The storage rows of the results table (fields of ``benchmarks.run.Row``)."""
    large, small, repeats = (50_000, 1_000, 20) if quick else (1_000_000, 10_000, 200)
    cold_rows, tickers, cold_repeats = (20_000, 20, 3) if quick else (525_600, 500, 7)
    with tempfile.TemporaryDirectory(prefix="dataprovider-bench-storage-") as tmp:
        root = Path(tmp)
        big, little = _refresher(root, "BIG", large, repeats), _refresher(root, "LITTLE", small, repeats)
        big_times, little_times = _turns([big, little], repeats)

        frame = datasets.minutes_24x7(cold_rows)
        datasets.write(root, "COLD", M1, frame)
        one_file = datasets.write_file(root / "cold.parquet", frame)
        cold, file_read = _turns(
            [lambda: DeltaStore(root, memory_cache_bytes=0).bars("COLD", M1), lambda: pd.read_parquet(one_file)],
            cold_repeats,
        )

        files = []
        for i in range(tickers):
            year = datasets.daily(252, seed=i)
            datasets.write(root, f"T{i:04d}", D1, year)
            files.append(datasets.write_file(root / f"T{i:04d}.parquet", year))
        names = [f"T{i:04d}" for i in range(tickers)]
        query = BarsQuery("T0000", D1, DataPeriod.YEAR_MAX, local_only=True)

        def cold_batch() -> object:
            return DataService(DeltaStore(root), None).get_batch(query, names)

        batch, reads = _turns([cold_batch, lambda: [pd.read_parquet(f) for f in files]], cold_repeats)

    p50 = lambda times: float(np.median(times))  # noqa: E731
    return [
        {
            "goal": "8 append",
            "measure": f"refresh adding 1 bar to {large:,} 1m bars p50",
            "value": p50(big_times),
            "unit": "ms",
            "baseline": f"same on {small:,} bars",
            "baseline_value": p50(little_times),
            "target": "<= 20 ms, <= 1.5x",
            "ok": p50(big_times) <= 20 and p50(big_times) <= 1.5 * p50(little_times),
        },
        {
            "goal": "8 append",
            "measure": f"refresh adding 1 bar to {large:,} 1m bars p90",
            "value": float(np.percentile(big_times, 90)),
            "unit": "ms",
        },
        {
            "goal": "9 cold read",
            "measure": f"{cold_rows:,} bars, no memory cache p50",
            "value": p50(cold),
            "unit": "ms",
            "baseline": "pd.read_parquet",
            "baseline_value": p50(file_read),
            "target": "<= 1.5x",
            "ok": p50(cold) <= 1.5 * p50(file_read),
        },
        {
            "goal": "9 cold batch",
            "measure": f"{tickers} x 252 rows, fresh store p50",
            "value": p50(batch),
            "unit": "ms",
            "baseline": f"{tickers} pd.read_parquet",
            "baseline_value": p50(reads),
            "target": "<= 1.0x",
            "ok": p50(batch) <= p50(reads),
        },
    ]
