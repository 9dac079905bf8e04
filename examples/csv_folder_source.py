"""A source serving a folder of CSV files that a team drops in, in place of Yahoo Finance.

Serve it with::

    DATAPROVIDER_CSV_DIR=/shared/bars python -m server --source examples/csv_folder_source.py:make_source

The folder holds one file per dataset, in a sub-folder per resolution, named after the ticker
(upper or lower case; ``.csv``, ``.csv.gz`` or ``.parquet``)::

    /shared/bars/1d/ACME.csv
    /shared/bars/1d/btc-usd.csv.gz
    /shared/bars/1h/ACME.csv

Files are read with :func:`dataprovider.sources.files.read_bars_file`, so every layout
``python -m server import`` accepts works here too (Yahoo's "Download" CSV, lower-case columns,
an Adj Close column, ...). Naive times are taken to be in the ticker's exchange timezone as
guessed from its form (New York for a plain symbol such as ACME), or in
``$DATAPROVIDER_CSV_TIMEZONE`` when set. Each fetch reads the file again, so bars appended to
it are served the next time the server asks (for a request or a live subscription, at most
every minute intraday and every 5 minutes for daily bars).

docs/SOURCES.md explains the ``Source`` protocol this implements.
"""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from dataprovider import DataResolution
from dataprovider.errors import InvalidRequestError, SymbolNotFoundError, UpstreamUnavailableError
from dataprovider.sources import FetchResult
from dataprovider.sources.files import read_bars_file

#: The environment variable naming the folder :func:`make_source` serves.
FOLDER_VARIABLE = "DATAPROVIDER_CSV_DIR"
#: The environment variable naming the timezone of naive times in the files (optional).
TIMEZONE_VARIABLE = "DATAPROVIDER_CSV_TIMEZONE"

_SUFFIXES = (".csv", ".csv.gz", ".parquet")


class CsvFolderSource:
    """Bars from ``folder/<resolution>/<TICKER>.csv`` (see the module docstring).

    Parameters
    ----------
    folder : str or Path
        The folder of per-resolution sub-folders.
    name : str
        What replies carry as ``source`` for the datasets it fills.
    timezone : str, optional
        IANA timezone of naive times in the files; default: guessed from each ticker.
    """

    def __init__(self, folder: str | os.PathLike[str], *, name: str = "csv-folder", timezone: str | None = None):
        self.folder = Path(folder)
        self.name = name
        self.timezone = timezone

    def fetch(
        self, ticker: str, resolution: DataResolution, start: pd.Timestamp | None, end: pd.Timestamp | None
    ) -> FetchResult:
        """The file's bars with ``start <= time < end``; ``available_from`` is its first bar."""
        path = self._file(ticker, resolution)
        try:
            frame, timezone = read_bars_file(path, ticker=ticker, resolution=resolution, timezone=self.timezone)
        except InvalidRequestError as exc:
            # A damaged file is this source failing, not the client's request: the server serves its cached bars.
            raise UpstreamUnavailableError(f"{self.name} cannot read {path}: {exc.message}", ticker=ticker) from exc
        first = frame.index[0].tz_convert("UTC")
        if start is not None:
            frame = frame[frame.index >= start]
        if end is not None:
            frame = frame[frame.index < end]
        return FetchResult(frame, timezone, available_from=first)

    def _file(self, ticker: str, resolution: DataResolution) -> Path:
        """The dataset's file, its name matched without regard to case."""
        folder = self.folder / resolution.value
        try:
            files = {path.name.upper(): path for path in folder.iterdir()}
        except FileNotFoundError:
            if not self.folder.is_dir():
                raise UpstreamUnavailableError(
                    f"{self.name}: the folder {self.folder} is gone (moved, or a share not mounted?)", ticker=ticker
                ) from None
            files = {}
        except OSError as exc:
            raise UpstreamUnavailableError(f"{self.name} cannot list {folder}: {exc}", ticker=ticker) from exc
        for suffix in _SUFFIXES:
            path = files.get(f"{ticker}{suffix}".upper())
            if path is not None:
                return path
        raise SymbolNotFoundError(
            f"{self.name} has no {resolution.value} bars for {ticker}: put a file {ticker}.csv in {folder}",
            ticker=ticker,
        )


def make_source() -> CsvFolderSource:
    """The source for ``--source examples/csv_folder_source.py:make_source``: the folder in $DATAPROVIDER_CSV_DIR.

    Raises
    ------
    RuntimeError
        If the variable is not set or names no folder; the server then exits saying so.
    """
    folder = os.environ.get(FOLDER_VARIABLE)
    if not folder:
        raise RuntimeError(f"set {FOLDER_VARIABLE} to the folder of CSV files to serve, e.g. {FOLDER_VARIABLE}=./bars")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise RuntimeError(f"{FOLDER_VARIABLE}={folder} is not a folder")
    timezone = os.environ.get(TIMEZONE_VARIABLE) or None
    if timezone is not None:
        ZoneInfo(timezone)  # an unknown name fails at start-up rather than at every fetch
    return CsvFolderSource(path, timezone=timezone)
