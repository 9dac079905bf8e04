"""What the cache knows about a dataset: its bookkeeping (stored in the file) and its facts.

A dataset is the bars of one (ticker, resolution). :class:`DatasetMeta` travels
inside each of the dataset's commits, as JSON, so bars and bookkeeping always
change together; :class:`DatasetInfo` adds the row count and the first and last
bar the commit records, and is what the store hands out without reading any bars.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dataprovider.enums import DataResolution

__all__ = ["DatasetInfo", "DatasetMeta"]

_META_VERSION = 1


@dataclass(frozen=True)
class DatasetMeta:
    """Bookkeeping stored with each commit of a dataset.

    Attributes
    ----------
    timezone : str
        Exchange timezone of the bars.
    source : str
        Where the bars came from ('yahoo', 'sample', 'import', ...).
    last_fetched : pandas.Timestamp or None
        When the source was last asked for this dataset (UTC).
    coverage_start : pandas.Timestamp or None
        The cache holds every bar the source has from this instant on (UTC).
    history_complete : bool
        The source has nothing older than the first cached bar.
    forming_from : pandas.Timestamp or None
        Start of the first bar that was still forming when fetched (UTC); it and
        later bars are refreshed on the next update, never treated as final.
    """

    timezone: str
    source: str
    last_fetched: pd.Timestamp | None = None
    coverage_start: pd.Timestamp | None = None
    history_complete: bool = False
    forming_from: pd.Timestamp | None = None

    def replace(self, **changes) -> DatasetMeta:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_json(cls, doc: dict) -> tuple[DatasetMeta, pd.Timestamp | None, pd.Timestamp | None]:
        """The metadata in a file's JSON document, and the first and last bar times it records (UTC)."""
        meta = cls(
            timezone=doc["timezone"],
            source=doc["source"],
            last_fetched=_ts(doc["last_fetched"]),
            coverage_start=_ts(doc["coverage_start"]),
            history_complete=bool(doc["history_complete"]),
            forming_from=_ts(doc["forming_from"]),
        )
        return meta, _ts(doc["first"]), _ts(doc["last"])

    def to_json(self, first: pd.Timestamp | None, last: pd.Timestamp | None) -> bytes:
        """Serialise, with the frame's first and last bar times."""
        doc = {
            "version": _META_VERSION,
            "timezone": self.timezone,
            "source": self.source,
            "last_fetched": _iso(self.last_fetched),
            "coverage_start": _iso(self.coverage_start),
            "history_complete": self.history_complete,
            "forming_from": _iso(self.forming_from),
            "first": _iso(first),
            "last": _iso(last),
        }
        return json.dumps(doc).encode()


@dataclass(frozen=True)
class DatasetInfo:
    """What the cache knows about one dataset, from its newest commit alone (``version``: that commit's)."""

    ticker: str
    resolution: DataResolution
    path: Path
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    meta: DatasetMeta
    version: int | None = None
    files: tuple | None = None  # the version's data files (engine.tables.DataFile), None: ask the table


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else pd.Timestamp(ts).tz_convert("UTC").isoformat()


def _ts(value: str | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")
