"""A process that keeps changing datasets in a cache, for tests that kill it mid-commit.

:func:`write_versions` commits version after version of each dataset in
:data:`DATASETS` and, after each commit returns, appends ``"<ticker> <version>"`` to
a journal file and fsyncs it: the journal's last line for a dataset is a version
known to be committed. Versions come in rounds of :data:`ROUND`: the first of a
round replaces the whole dataset (``DeltaStore.write``), the middle one revises
the newer half of the bars (``replace_from``) and the others append bars
(``append``). The store compacts and vacuums (with no retention) whenever a table
holds more than one small file, so kills land in those too. Version ``v`` of a
dataset is a slice of the bundled sample (real bars; a revised round's newer half
scaled by a small factor) chosen by ``(seed, v)``, so the parent can rebuild what
any version must hold with :func:`version_frame`.

Tests start it in a process of their own (``multiprocessing``'s forkserver, so each
start costs a fork, not an import of pandas) and kill it with SIGKILL at random.

Examples
--------
>>> frame, meta = version_frame("SPY", seed=3, version=7)
>>> meta.source
'v7'
>>> later, _ = version_frame("SPY", seed=3, version=6)
>>> frame.iloc[: len(later)].equals(later)  # version 7 appends to version 6
True
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
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataResolution
from dataprovider.sources.sample import load_sample, sample_entries

__all__ = ["DATASETS", "ROUND", "parse_journal", "version_frame", "write_versions"]

#: Versions per round: a whole write, appends, one revision (at ``ROUND // 2``), appends.
ROUND = 8
#: Bars each append adds.
_STEP = 24

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
    """What version ``version`` of ``ticker`` holds, and its meta (see the module docstring)."""
    resolution = dict(DATASETS)[ticker]
    full = _sample(ticker, resolution)
    rng = np.random.default_rng([seed, version // ROUND, len(ticker)])
    start = int(rng.integers(0, len(full) // 4))
    stop = int(rng.integers(len(full) // 2, len(full) - ROUND * _STEP)) + (version % ROUND) * _STEP
    frame = full.iloc[start:stop].copy()
    if version % ROUND >= ROUND // 2:
        newer = frame.index >= revised_from(frame, version)
        frame.loc[newer, ["Open", "High", "Low", "Close"]] *= 1.0001
    return frame, DatasetMeta(
        str(frame.index.tz), f"v{version}", last_fetched=pd.Timestamp(version, unit="s", tz="UTC")
    )


def revised_from(frame: pd.DataFrame, version: int) -> pd.Timestamp:
    """Where a round's revision starts: the middle bar of the round's first version."""
    return frame.index[(len(frame) - (version % ROUND) * _STEP) // 2]


def commit_version(store: DeltaStore, ticker: str, version: int, seed: int) -> None:
    """Commit ``version`` of ``ticker`` on top of ``version - 1`` (a whole write at the start of a round)."""
    resolution = dict(DATASETS)[ticker]
    frame, meta = version_frame(ticker, seed=seed, version=version)
    step = version % ROUND
    if step == 0:
        store.write(ticker, resolution, frame, meta)
    elif step == ROUND // 2:
        start = revised_from(frame, version)
        store.replace_from(ticker, resolution, start, frame[frame.index >= start], meta)
    else:
        store.append(ticker, resolution, frame.iloc[-_STEP:], meta)


def write_versions(root: str, journal: str, seed: int, first_version: int, ready: Event) -> None:
    """Commit versions ``first_version`` (a multiple of ``ROUND``), ``first_version + 1``, ... until killed.

    ``ready`` is set once the samples are loaded, just before the first commit.
    """
    store = DeltaStore(root, memory_cache_bytes=0, max_files=1, retention=pd.Timedelta(0))
    for ticker, resolution in DATASETS:
        _sample(ticker, resolution)
    ready.set()
    with open(journal, "a", encoding="ascii") as log:
        for version in itertools.count(first_version):
            for ticker, _ in DATASETS:
                commit_version(store, ticker, version, seed)
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
