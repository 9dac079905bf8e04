"""Caches in the previous layout (one Parquet file per dataset), built from the bundled sample, for migration tests.

A file is written exactly as the previous version's store wrote it: the canonical
frame by ``pa.Table.from_pandas(frame, preserve_index=True)``, with the dataset's
bookkeeping as JSON under the schema-metadata key ``dataprovider``.

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     written = write_old_cache(Path(tmp), [("SPY", "1d")])
...     sorted(p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*.parquet"))
['1d/SPY.parquet']
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dataprovider.engine.datasets import DatasetMeta
from dataprovider.enums import DataResolution
from dataprovider.sources.sample import load_sample, sample_entries

__all__ = ["DATASETS", "OldDataset", "old_file", "write_old_cache", "write_old_file"]

#: Daily and intraday datasets, an index among them at two resolutions.
DATASETS: tuple[tuple[str, str], ...] = (
    ("^GSPC", "1d"),
    ("^GSPC", "1m"),
    ("SPY", "1d"),
    ("BTC-USD", "1h"),
    ("ETH-USD", "1d"),
)

OldDataset = tuple[str, DataResolution, pd.DataFrame, DatasetMeta]


def old_file(root: Path, ticker: str, resolution: str | DataResolution) -> Path:
    """Where the previous layout kept a dataset: ``<root>/<resolution>/<TICKER>.parquet``."""
    return root / DataResolution.parse(resolution).value / f"{ticker}.parquet"


def write_old_file(root: Path, ticker: str, resolution: DataResolution, frame: pd.DataFrame, meta: DatasetMeta) -> Path:
    """Write one dataset file as the previous version did; its path."""
    table = pa.Table.from_pandas(frame, preserve_index=True)
    first, last = (frame.index[0], frame.index[-1]) if len(frame) else (None, None)
    table = table.replace_schema_metadata({**table.schema.metadata, b"dataprovider": meta.to_json(first, last)})
    path = old_file(root, ticker, resolution)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=64_000, write_page_checksum=True)
    return path


def write_old_cache(root: Path, datasets: Iterable[tuple[str, str]] = DATASETS) -> list[OldDataset]:
    """An old-layout cache of the bundled sample's ``datasets``; (ticker, resolution, frame, meta) of each."""
    entries = {(e.ticker, e.resolution): e for e in sample_entries()}
    written = []
    for ticker, resolution in datasets:
        entry = entries[(ticker, DataResolution.parse(resolution))]
        frame = load_sample(entry)
        fetched, covered = pd.Timestamp("2024-05-01 12:00", tz="UTC"), frame.index[0].tz_convert("UTC")
        meta = DatasetMeta(entry.timezone, "sample", last_fetched=fetched, coverage_start=covered)
        write_old_file(root, ticker, entry.resolution, frame, meta)
        written.append((ticker, entry.resolution, frame, meta))
    return written
