"""A process that keeps replacing datasets in a cache, for tests that kill it mid-write.

:func:`write_versions` writes version after version of each dataset in
:data:`DATASETS` through :meth:`ParquetStore.write` and, after each write returns,
appends ``"<ticker> <version>"`` to a journal file and fsyncs it: the journal's last
line for a dataset is a version known to be committed. Version ``v`` of a dataset
is a slice of the bundled sample (real bars) chosen by ``(seed, v)``, so the
parent can rebuild what any version must hold with :func:`version_frame`.

Tests start it in a process of their own (``multiprocessing``'s forkserver, so each
start costs a fork, not an import of pandas) and kill it with SIGKILL at random.

Examples
--------
>>> frame, meta = version_frame("SPY", seed=3, version=7)
>>> meta.source
'v7'
"""

from __future__ import annotations

import itertools
import os
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from dataprovider.engine.datasets import DatasetMeta
from dataprovider.engine.store import ParquetStore
from dataprovider.enums import DataResolution
from dataprovider.sources.sample import load_sample, sample_entries

__all__ = ["DATASETS", "parse_journal", "version_frame", "write_versions"]

#: The datasets written, each from its bundled sample: a large one and a small one.
DATASETS: tuple[tuple[str, DataResolution], ...] = (
    ("BTC-USD", DataResolution.HOUR_01),
    ("SPY", DataResolution.DAY_01),
)


class Event(Protocol):
    """A ``multiprocessing`` event (only ``set`` is used here)."""

    def set(self) -> None: ...


@cache
def _sample(ticker: str, resolution: DataResolution) -> pd.DataFrame:
    entry = next(e for e in sample_entries() if (e.ticker, e.resolution) == (ticker, resolution))
    return load_sample(entry)


def version_frame(ticker: str, *, seed: int, version: int) -> tuple[pd.DataFrame, DatasetMeta]:
    """What version ``version`` of ``ticker`` holds: a seeded slice of its sample, and its meta."""
    resolution = dict(DATASETS)[ticker]
    full = _sample(ticker, resolution)
    rng = np.random.default_rng([seed, version, len(ticker)])
    start = int(rng.integers(0, len(full) // 4))
    stop = int(rng.integers(len(full) // 2, len(full) + 1))
    frame = full.iloc[start:stop]
    return frame, DatasetMeta(
        str(frame.index.tz), f"v{version}", last_fetched=pd.Timestamp(version, unit="s", tz="UTC")
    )


def write_versions(root: str, journal: str, seed: int, first_version: int, ready: Event) -> None:
    """Write versions ``first_version``, ``first_version + 1``, ... of every dataset until killed.

    ``ready`` is set once the samples are loaded, just before the first write.
    """
    store = ParquetStore(root, memory_cache_bytes=0)
    for ticker, resolution in DATASETS:
        _sample(ticker, resolution)
    ready.set()
    with open(journal, "a", encoding="ascii") as log:
        for version in itertools.count(first_version):
            for ticker, resolution in DATASETS:
                frame, meta = version_frame(ticker, seed=seed, version=version)
                store.write(ticker, resolution, frame, meta)
                log.write(f"{ticker} {version}\n")
                log.flush()
                os.fsync(log.fileno())


def parse_journal(journal: Path) -> dict[str, int]:
    """The last committed version of each dataset, from a journal (only whole lines count)."""
    last: dict[str, int] = {}
    if journal.exists():
        for line in journal.read_text(encoding="ascii").splitlines(keepends=True):
            if line.endswith("\n"):
                ticker, version = line.split()
                last[ticker] = int(version)
    return last
