"""What a source of bars is: the ``Source`` protocol and the ``FetchResult`` it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pandas as pd

from ..enums import DataResolution

__all__ = ["FetchResult", "Source"]


@dataclass(frozen=True)
class FetchResult:
    """Bars fetched from a source.

    Attributes
    ----------
    frame : pandas.DataFrame
        A canonical frame (see :mod:`dataprovider.frames`); may be empty.
    timezone : str
        The instrument's exchange timezone (IANA name), 'UTC' for crypto.
    corporate_actions : pandas.DataFrame
        Splits and dividends inside the fetched range, columns 'Dividends' and
        'Stock Splits' (non-zero rows only), indexed like ``frame``.
    available_from : pandas.Timestamp or None
        The earliest time the source offers at this resolution (None: no limit
        known), so a caller can tell "nothing there" from "not that far back".
    """

    frame: pd.DataFrame
    timezone: str
    corporate_actions: pd.DataFrame = field(default_factory=pd.DataFrame)
    available_from: pd.Timestamp | None = None


@runtime_checkable
class Source(Protocol):
    """Where bars come from when the cache does not have them.

    A source raises the :mod:`dataprovider.errors` upstream errors
    (``UpstreamUnavailableError``, ``UpstreamRateLimitedError``,
    ``UpstreamTimeoutError``), ``SymbolNotFoundError`` for an unknown symbol and
    ``RangeNotAvailableError`` for a range it cannot serve at that resolution; it
    never reports a network failure as "no data".
    """

    name: str

    def fetch(
        self,
        ticker: str,
        resolution: DataResolution,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
    ) -> FetchResult:
        """Bars with ``start <= time < end`` (UTC timestamps; None: as far as available)."""
        ...
