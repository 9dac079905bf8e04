"""The sample dataset shipped inside the package, so examples answer without a network.

``dataprovider/sample_data/manifest.json`` lists the datasets; each is one
Parquet file holding a canonical frame. Most are real market data; the ones
whose ``kind`` is 'synthetic' are generated and say so in their description
(see ``sample_data/README.md`` for provenance and licences). Files are read
through :mod:`importlib.resources`, so this works from an installed wheel too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

import pandas as pd

from dataprovider.enums import DataResolution
from dataprovider.frames import normalize_frame

__all__ = ["SampleEntry", "load_sample", "sample_datasets", "sample_entries"]

_DATA_DIR = "sample_data"
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class SampleEntry:
    """One dataset of the sample, as listed in its manifest.

    Attributes
    ----------
    ticker, resolution, timezone : str, DataResolution, str
        The series and the exchange timezone of its index.
    file : str
        The Parquet file's name inside ``dataprovider/sample_data``.
    rows : int
        Number of bars.
    first, last : pandas.Timestamp
        Times of the first and last bar.
    kind : str
        'real' (market data, possibly cleaned as the description says) or
        'synthetic' (generated; never to be taken for market data).
    description : str
        Where the bars come from and what was changed.
    sources : tuple of str
        The raw files (in the repository's data/sample-sources/) it was built from.
    licence : str
        The licence of the data as distributed (an SPDX identifier or LicenseRef-...).
    """

    ticker: str
    resolution: DataResolution
    file: str
    timezone: str
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    kind: str
    description: str
    sources: tuple[str, ...]
    licence: str

    @property
    def is_synthetic(self) -> bool:
        """True for generated bars."""
        return self.kind == "synthetic"


def sample_entries() -> list[SampleEntry]:
    """Every dataset of the bundled sample, in manifest order.

    Examples
    --------
    >>> entries = sample_entries()
    >>> any(e.ticker == "SPY" and e.resolution == "1d" for e in entries)
    True
    """
    return list(_entries())


def load_sample(entry: SampleEntry) -> pd.DataFrame:
    """The canonical frame of one sample dataset.

    Examples
    --------
    >>> spy = next(e for e in sample_entries() if e.ticker == "SPY")
    >>> frame = load_sample(spy)
    >>> len(frame) == spy.rows, str(frame.index.tz)
    (True, 'America/New_York')
    """
    with (resources.files("dataprovider") / _DATA_DIR / entry.file).open("rb") as handle:
        frame = pd.read_parquet(handle, engine="pyarrow")
    return normalize_frame(frame, entry.resolution, entry.timezone)


@cache
def _entries() -> tuple[SampleEntry, ...]:
    text = (resources.files("dataprovider") / _DATA_DIR / _MANIFEST).read_text(encoding="utf-8")
    return tuple(
        SampleEntry(
            ticker=item["ticker"],
            resolution=DataResolution.parse(item["resolution"]),
            file=item["file"],
            timezone=item["timezone"],
            rows=int(item["rows"]),
            first=pd.Timestamp(item["first"]).tz_convert(item["timezone"]),
            last=pd.Timestamp(item["last"]).tz_convert(item["timezone"]),
            kind=item["kind"],
            description=item["description"],
            sources=tuple(item["sources"]),
            licence=item["licence"],
        )
        for item in json.loads(text)["datasets"]
    )


def sample_datasets() -> Iterator[tuple[str, DataResolution, pd.DataFrame, str]]:
    """Every bundled dataset as (ticker, resolution, frame, timezone), loaded lazily."""
    for entry in sample_entries():
        yield entry.ticker, entry.resolution, load_sample(entry), entry.timezone
