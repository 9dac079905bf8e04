"""Generated bar datasets of the shapes the benchmarks need, written into a cache directory or a Parquet file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dataprovider.engine.datasets import DatasetMeta
from dataprovider.engine.store import DeltaStore
from dataprovider.engine.tables import ROW_GROUP_SIZE
from dataprovider.enums import DataResolution
from dataprovider.frames import normalize_frame
from dataprovider.sources.sample import load_sample, sample_entries

NEW_YORK = "America/New_York"


def _bars(index: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    """A random walk of OHLCV bars on ``index``."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, len(index))))
    spread = np.abs(rng.normal(0, 0.0005, len(index))) * close
    frame = pd.DataFrame(
        {
            "Open": close * (1 + rng.normal(0, 0.0003, len(index))),
            "High": close + spread,
            "Low": close - spread,
            "Close": close,
            "Volume": rng.integers(100, 100_000, len(index)),
        },
        index=index,
    )
    frame["High"] = frame[["Open", "High", "Close"]].max(axis=1)
    frame["Low"] = frame[["Open", "Low", "Close"]].min(axis=1)
    return frame


def daily(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` business days ending 2024-12-31, New York."""
    index = pd.bdate_range(end="2024-12-31", periods=rows, tz=NEW_YORK)
    return normalize_frame(_bars(index, seed), DataResolution.DAY_01, NEW_YORK)


def minutes_24x7(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` consecutive one-minute bars ending 2024-12-31, UTC (a crypto pair)."""
    index = pd.date_range(end="2024-12-31 23:59", periods=rows, freq="min", tz="UTC")
    return normalize_frame(_bars(index, seed), DataResolution.MINUTE_01, "UTC")


def equity_minutes(years: int, seed: int = 0) -> pd.DataFrame:
    """``years`` of New York session minutes (09:30-15:59 on business days) ending 2024-12-31."""
    days = pd.bdate_range(end="2024-12-31", periods=252 * years)
    offsets = pd.timedelta_range("09:30:00", "15:59:00", freq="min")
    naive = (days.values[:, None] + offsets.values[None, :]).ravel()
    index = pd.DatetimeIndex(naive).tz_localize(NEW_YORK)
    return normalize_frame(_bars(index, seed), DataResolution.MINUTE_01, NEW_YORK)


def sample(ticker: str, resolution: DataResolution) -> pd.DataFrame:
    """The bundled sample's frame of (``ticker``, ``resolution``), as a server seeds it into its cache."""
    return load_sample(next(e for e in sample_entries() if e.ticker == ticker and e.resolution == resolution))


def write(root: Path, ticker: str, resolution: DataResolution, frame: pd.DataFrame) -> Path:
    """Store ``frame`` as a cache dataset and return its table's directory."""
    store = DeltaStore(root)
    meta = DatasetMeta(timezone=str(frame.index.tz), source="benchmark", history_complete=True)
    return store.write(ticker, resolution, frame, meta).path


def write_file(path: Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as one Parquet file at ``path``, the way the cache writes its data files; return ``path``.

    The baseline the benchmarks time ``pd.read_parquet`` on: the same bars as a
    cache dataset, in one file, with the cache's row groups, page checksums and
    compression (and the index pandas puts back).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=True)
    pq.write_table(table, path, row_group_size=ROW_GROUP_SIZE, write_page_checksum=True, compression="snappy")
    return path
