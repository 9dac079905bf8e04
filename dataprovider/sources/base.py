"""What a source of bars is: the ``Source`` protocol and the ``FetchResult`` it returns.

A server asks its source for bars whenever the cache lacks them (see
:class:`~dataprovider.engine.service.DataService`); docs/SOURCES.md walks through
writing one and serving it with ``python -m server --source MODULE:FACTORY``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pandas as pd

from dataprovider.enums import DataResolution

__all__ = ["FetchResult", "Source"]


@dataclass(frozen=True)
class FetchResult:
    """Bars fetched from a source.

    Attributes
    ----------
    frame : pandas.DataFrame
        A canonical frame (see :mod:`dataprovider.frames`;
        :func:`~dataprovider.frames.normalize_frame` gives any OHLCV frame that
        shape): the bars with ``start <= time < end``, in ``timezone``. It may be
        empty: the symbol exists but has no bars there. Its last bar may still be
        forming (today's daily bar during the session); the cache notes that and
        asks for it again later.
    timezone : str
        The instrument's exchange timezone (IANA name), 'UTC' for crypto. It
        becomes the dataset's timezone, in which every reply is indexed.
    corporate_actions : pandas.DataFrame
        Splits and dividends inside the fetched range, columns 'Dividends' and
        'Stock Splits' (non-zero rows only), indexed like ``frame``. One newer
        than the cache's last bar tells the cache that history was re-adjusted,
        so it downloads the dataset afresh. Empty (the default) for a source
        whose past prices never change.
    available_from : pandas.Timestamp or None
        The earliest time the source offers at this resolution (None: no limit
        known), so a caller can tell "nothing there" from "not that far back":
        the cache records that it holds everything the source has from there on.
    """

    frame: pd.DataFrame
    timezone: str
    corporate_actions: pd.DataFrame = field(default_factory=pd.DataFrame)
    available_from: pd.Timestamp | None = None


@runtime_checkable
class Source(Protocol):
    """Where bars come from when the cache does not have them.

    Any object with these two members is a source; it need not inherit from
    this class (``isinstance(obj, Source)`` checks that both are there).

    Attributes
    ----------
    name : str
        A short, stable name ('yahoo', 'team-csv'). It is stored with every
        dataset the source fills and comes back as ``source`` in each reply
        for it, as ``upstream`` in ``GET /api/health``, and in the server log.

    Notes
    -----
    :meth:`fetch` runs on the server's worker threads: for different datasets
    at the same time, for one dataset (ticker and resolution) one call at a
    time. It is called when a request that may download finds the cache behind
    (the newest bars, from a few bars before the last final one; or history
    older than the cache holds) and on each poll of a live subscription.

    Errors say what went wrong, with :mod:`dataprovider.errors` classes:

    * ``SymbolNotFoundError`` for a ticker the source does not know
      (SYMBOL_NOT_FOUND to the client);
    * ``RangeNotAvailableError`` for a range it cannot serve at that resolution
      (RANGE_NOT_AVAILABLE; asked for older history than the cache holds, the
      cache then takes what it holds as all there is);
    * ``UpstreamUnavailableError``, ``UpstreamRateLimitedError`` or
      ``UpstreamTimeoutError`` when the source cannot answer now: the server
      then serves the cached bars marked stale, with the error as a warning.

    A source never reports a failure as "no data" (an empty frame), since the
    cache would take it as the truth. Any other exception reaches the client as
    INTERNAL, with the traceback in the server log. Clients wait 30 s by
    default, so a fetch should give up (``UpstreamTimeoutError``) well before.
    """

    name: str

    def fetch(
        self,
        ticker: str,
        resolution: DataResolution,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
    ) -> FetchResult:
        """Bars of ``ticker`` with ``start <= time < end``.

        Parameters
        ----------
        ticker : str
            A validated, upper-case symbol ('SPY', 'BTC-USD').
        resolution : DataResolution
            The bar width.
        start, end : pandas.Timestamp or None
            tz-aware UTC bounds; a None ``start`` means as far back as the
            source has, a None ``end`` up to now.

        Returns
        -------
        FetchResult
        """
        ...
