"""Cache-first answers: the one code path behind the REST API and the Socket.IO events.

``DataService.get_bars`` answers a :class:`~dataprovider.protocol.query.BarsQuery`:

* ``local_only=True`` (the default): from the cache alone. A resolution that is
  not cached is derived from a finer cached one when possible (``resampled``);
  otherwise ``NOT_CACHED``.
* ``local_only=False``: the cache is first brought up to date from the source
  when it is behind (:mod:`~dataprovider.engine.downloads` asks only for what is
  missing), then the window is cut from it. If the source fails, or the download
  cannot be saved (disk full), cached bars are still served, with ``stale=True``
  and a warning naming the failure. A cache file found damaged while answering is
  set aside and downloaded afresh.

The service only orchestrates: downloads, the window rules
(:mod:`~dataprovider.engine.window`) and derivation (:mod:`~dataprovider.engine.derive`)
live in modules of their own, and it calls them in order.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from dataprovider.bars import Bars
from dataprovider.engine.datasets import DatasetInfo
from dataprovider.engine.derive import derivation_read_start, derivation_sources, derived_window
from dataprovider.engine.downloads import Downloads, StatusCallback
from dataprovider.engine.refresh import (
    RefreshPolicy,
)
from dataprovider.engine.store import DeltaStore
from dataprovider.engine.window import select_window
from dataprovider.enums import DataResolution
from dataprovider.errors import (
    CacheCorruptError,
    DataProviderError,
    InternalServerError,
    NoDataError,
    NotCachedError,
    RangeNotAvailableError,
    StorageFullError,
    SymbolNotFoundError,
    UpstreamError,
)
from dataprovider.protocol.query import BarsQuery
from dataprovider.sources.base import Source

__all__ = ["BarsResult", "DataService"]

logger = logging.getLogger(__name__)

ItemCallback = Callable[[str, "BarsResult | DataProviderError"], None]


@dataclass
class BarsResult:
    """The answer to one query: the bars (as Arrow, see :class:`~dataprovider.bars.Bars`) and where they came from."""

    ticker: str
    resolution: DataResolution
    bars: Bars
    timezone: str
    source: str
    stale: bool = False
    warnings: list[str] = field(default_factory=list)
    last_fetched: pd.Timestamp | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The bars as a canonical DataFrame (made on each access)."""
        return self.bars.to_frame()


class DataService:
    """Answers bar queries from the cache, topping it up from ``source`` as needed.

    Parameters
    ----------
    store : DeltaStore
        The cache.
    source : Source or None
        Where missing bars come from; None serves the cache alone.
    policy : RefreshPolicy, optional
        When to refresh.
    clock : callable, optional
        Returns "now" as a tz-aware UTC Timestamp (tests inject one).
    batch_workers : int
        Tickers of a batch answered at once.

    Examples
    --------
    A service with no source over a cache in a temporary directory, filled with
    the bundled sample data as the server fills it (a server passes
    ``YahooSource()`` as ``source`` to download what is missing):

    >>> import tempfile
    >>> from dataprovider.engine.seeding import seed
    >>> from dataprovider.sources.sample import sample_datasets
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = DeltaStore(tmp.name)
    >>> seed(store, sample_datasets(), source="sample")
    13
    >>> service = DataService(store)
    >>> result = service.get_bars(BarsQuery("SPY", DataResolution.DAY_01, limit=3, local_only=True))
    >>> result.source, result.timezone, result.frame.index.strftime("%Y-%m-%d").tolist()
    ('sample', 'America/New_York', ['2017-12-27', '2017-12-28', '2017-12-29'])

    Weekly bars are not cached, so they are resampled from the daily ones:

    >>> weekly = service.get_bars(BarsQuery("SPY", DataResolution.WEEK_01, limit=2, local_only=True))
    >>> weekly.source, weekly.frame["Close"].round(2).tolist()
    ('resampled from 1d (sample)', [267.51, 266.86])
    >>> service.get_bars(BarsQuery("MSFT", DataResolution.DAY_01, local_only=True))
    Traceback (most recent call last):
    ...
    dataprovider.errors.NotCachedError: NOT_CACHED: MSFT 1d is not in the cache ...
    >>> service.close()
    >>> store.close()
    True
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        store: DeltaStore,
        source: Source | None = None,
        *,
        policy: RefreshPolicy | None = None,
        clock: Callable[[], pd.Timestamp] | None = None,
        batch_workers: int = 4,
    ) -> None:
        self.store = store
        self.source = source
        self.policy = policy or RefreshPolicy()
        self.clock = clock or (lambda: pd.Timestamp.now("UTC"))
        self.downloads = None if source is None else Downloads(store, source, self.policy, self.clock)
        self._executor = ThreadPoolExecutor(max_workers=batch_workers, thread_name_prefix="batch")

    def close(self, *, wait: bool = False) -> None:
        """Stop the batch workers: pending work is abandoned; with ``wait``, return once running work has ended."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    # ------------------------------------------------------------ queries
    def get_bars(self, query: BarsQuery, on_status: StatusCallback | None = None) -> BarsResult:
        """Answer one query (see the module docstring for the rules); ``local_only=False`` downloads what is missing.

        Raises
        ------
        DataProviderError
            NOT_CACHED, NO_DATA, SYMBOL_NOT_FOUND, RANGE_NOT_AVAILABLE,
            UPSTREAM_*, CACHE_CORRUPT, STORAGE_FULL or BUSY, each with a message
            saying what to do.
        """
        return self._answer_again_if_damaged(query, on_status, may_download=True)

    def cached_answer(self, query: BarsQuery, on_status: StatusCallback | None = None) -> BarsResult | None:
        """The answer if the cache can give it now, without asking the source; None if it needs the source.

        A server calls this on the thread that received the request, and hands
        the query to a worker (:meth:`get_bars`, which may wait on the network)
        only when this returns None.

        Raises
        ------
        DataProviderError
            As :meth:`get_bars`, for answers that need no download.
        """
        return self._answer_again_if_damaged(query, on_status, may_download=False)

    def _answer_again_if_damaged(
        self, query: BarsQuery, on_status: StatusCallback | None, *, may_download: bool
    ) -> BarsResult | None:
        try:
            return self._answer(query, on_status, may_download)
        except CacheCorruptError:
            if query.local_only or self.source is None:
                raise
            # The damaged file is set aside now: asking again downloads the dataset afresh.
            return self._answer(query, on_status, may_download)

    def _answer(self, query: BarsQuery, on_status: StatusCallback | None, may_download: bool) -> BarsResult | None:
        """One attempt at an answer; None when it needs a download and ``may_download`` is false."""
        status = on_status or (lambda _status, _detail: None)
        warnings: list[str] = []
        stale = False
        checked_fresh = False
        if not query.local_only and self.downloads is not None:
            try:
                if not self.downloads.behind(query):
                    checked_fresh = True
                elif not may_download:
                    return None
                else:
                    checked_fresh = not self.downloads.refresh(query, status)
            except (UpstreamError, SymbolNotFoundError, RangeNotAvailableError, StorageFullError) as exc:
                if not self._has_data(query):
                    raise
                stale = True
                warnings.append(f"{exc.code}: {exc.message} Serving cached bars.")
                status("stale", {"code": exc.code, "message": exc.message})
        info = self._info(query.ticker, query.resolution, local_only=query.local_only)
        if info is None or info.rows == 0:
            return self._derived(query, status, warnings, stale)
        bars = select_window(lambda s, e: self.store.bars_of(info, s, e), info.last, query)
        if checked_fresh:  # the source was consulted and nothing needed downloading
            status("cached", {"rows": len(bars)})
        return BarsResult(
            ticker=info.ticker,
            resolution=info.resolution,
            bars=bars,
            timezone=info.meta.timezone,
            source=info.meta.source,
            stale=stale,
            warnings=warnings,
            last_fetched=info.meta.last_fetched,
        )

    def get_batch(
        self,
        query: BarsQuery,
        tickers: Iterable[str],
        on_item: ItemCallback | None = None,
        cancelled: threading.Event | None = None,
    ) -> dict[str, BarsResult | DataProviderError]:
        """Answer ``query`` for each ticker (duplicates answered once).

        Queries that may download run a few tickers at a time on worker threads;
        cache-only queries run one after another (threads would only contend).
        ``on_item(ticker, result_or_error)`` is called as each ticker finishes, in
        completion order. Tickers not started when ``cancelled`` is set, or when
        the service is closed, are skipped. Returns ticker -> result or error, in
        the given order.
        """
        unique = list(dict.fromkeys(tickers))
        outcomes: dict[str, BarsResult | DataProviderError] = {}

        def answer(ticker: str) -> None:
            if cancelled is not None and cancelled.is_set():
                return
            outcome = self._answer_or_error(query.for_ticker(ticker))
            outcomes[ticker] = outcome
            if on_item is not None:
                on_item(ticker, outcome)

        if query.local_only or self.source is None:
            for ticker in unique:  # reading the cache needs no waiting: threads would only contend
                answer(ticker)
        else:  # downloads wait on the network: answer a few tickers at once
            for future in [self._executor.submit(answer, ticker) for ticker in unique]:
                with contextlib.suppress(CancelledError):  # dropped by close(): left unanswered
                    future.result()
        return {ticker: outcomes[ticker] for ticker in unique if ticker in outcomes}

    def _answer_or_error(self, query: BarsQuery) -> BarsResult | DataProviderError:
        try:
            return self.get_bars(query)
        except DataProviderError as exc:
            exc.ticker = exc.ticker or query.ticker
            return exc
        except Exception:
            logger.exception("unexpected failure answering %s %s", query.ticker, query.resolution.value)
            return InternalServerError("the server failed unexpectedly; its log has the details", ticker=query.ticker)

    # ----------------------------------------------------------- internals
    def _info(self, ticker: str, resolution: DataResolution, *, local_only: bool) -> DatasetInfo | None:
        """The dataset's info; a damaged file (set aside by now) counts as missing unless ``local_only``."""
        return self.store.info(ticker, resolution) if local_only else self.store.info_if_readable(ticker, resolution)

    def _has_data(self, query: BarsQuery) -> bool:
        info = self._info(query.ticker, query.resolution, local_only=False)
        if info is not None and info.rows:
            return True
        return self._derivation_source(query) is not None

    def _derivation_source(self, query: BarsQuery) -> DatasetInfo | None:
        for source_resolution in derivation_sources(query.resolution):
            info = self._info(query.ticker, source_resolution, local_only=True)
            if info is not None and info.rows:
                return info
        return None

    def _derived(self, query: BarsQuery, status: StatusCallback, warnings: list[str], stale: bool) -> BarsResult:
        """Answer from a finer cached resolution, or raise NOT_CACHED / NO_DATA."""
        info = self._derivation_source(query)
        if info is None:
            if query.local_only or self.source is None:
                remedy = (
                    "this server runs offline, so import a file with `python -m server import`"
                    if self.source is None
                    else "ask with local_only=False to download it, or import a file with `python -m server import`"
                )
                raise NotCachedError(
                    f"{query.ticker} {query.resolution.value} is not in the cache (nor any finer resolution "
                    f"to derive it from): {remedy}",
                    ticker=query.ticker,
                )
            raise NoDataError(f"no {query.resolution.value} bars for {query.ticker}", ticker=query.ticker)
        status("resampling", {"from": info.resolution.value})
        start = derivation_read_start(query, info)
        bars = derived_window(self.store.bars_of(info, start, None).to_frame(), info, query, start)
        return BarsResult(
            ticker=info.ticker,
            resolution=query.resolution,
            bars=bars,
            timezone=info.meta.timezone,
            source=f"resampled from {info.resolution.value} ({info.meta.source})",
            stale=stale,
            warnings=warnings,
            last_fetched=info.meta.last_fetched,
        )
