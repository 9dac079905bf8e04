"""Where bars come from: the public plug-in layer of the server.

A source is any object with a ``name`` and a method
``fetch(ticker, resolution, start, end) -> FetchResult`` (the :class:`Source`
protocol; nothing to inherit). The server asks it for the bars its cache lacks
and stores what it returns. To write one:

1. Give it a short ``name``: replies carry it as ``source``.
2. In ``fetch``, return a :class:`FetchResult` holding the bars with
   ``start <= time < end`` (tz-aware UTC bounds, None: unbounded) as a canonical
   frame (:func:`dataprovider.frames.normalize_frame`), and the exchange timezone.
3. Raise the :mod:`dataprovider.errors` that say what went wrong:
   ``SymbolNotFoundError`` for an unknown ticker, ``RangeNotAvailableError`` for a
   range it cannot serve, ``Upstream*Error`` when it cannot answer now (the
   server then serves its cached bars, marked stale). Never an empty frame for
   a failure.
4. Write a function taking no arguments that returns the source, and serve it:
   ``python -m server --source path/to/file.py:make_source`` (or a module name in
   place of the path), or register it under the entry-point group
   ``dataprovider.sources`` of an installed package for ``--source NAME``.

:class:`Source` and :class:`FetchResult` (in :mod:`dataprovider.sources.base`)
document every field; docs/SOURCES.md has the whole guide, and
``examples/csv_folder_source.py`` a worked example that serves a folder of CSV
files. The modules here are the sources that ship with the project:
:mod:`~dataprovider.sources.yahoo` (the default, with its
:mod:`~dataprovider.sources.ratelimit`), :mod:`~dataprovider.sources.sample` (the
bundled sample data) and :mod:`~dataprovider.sources.files` (users' bar files).

Examples
--------
A source of one bar:

>>> import pandas as pd
>>> from dataprovider import DataResolution
>>> from dataprovider.frames import normalize_frame
>>> class OneBar:
...     name = "one-bar"
...
...     def fetch(self, ticker, resolution, start, end):
...         bars = pd.DataFrame(
...             {"Open": [10.0], "High": [11.0], "Low": [9.5], "Close": [10.5], "Volume": [1200]},
...             index=pd.DatetimeIndex(["2024-01-02"]),
...         )
...         bars = normalize_frame(bars, resolution, "America/New_York")
...         if start is not None:
...             bars = bars[bars.index >= start]
...         if end is not None:
...             bars = bars[bars.index < end]
...         return FetchResult(bars, "America/New_York")
>>> isinstance(OneBar(), Source)
True
>>> result = OneBar().fetch("SPY", DataResolution.DAY_01, None, None)
>>> result.frame.index[0], result.frame["Close"].tolist()
(Timestamp('2024-01-02 00:00:00-0500', tz='America/New_York'), [10.5])
>>> OneBar().fetch("SPY", DataResolution.DAY_01, pd.Timestamp("2024-02-01", tz="UTC"), None).frame.empty
True
"""

from __future__ import annotations

from dataprovider.sources.base import FetchResult, Source

__all__ = ["FetchResult", "Source"]
