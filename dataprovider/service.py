"""Cache-first answers: the one code path behind the REST API and the Socket.IO events.

``DataService.get_bars`` answers a :class:`~dataprovider.query.BarsQuery`:

* ``local_only=True``: from the cache alone. A resolution that is not cached is
  derived from a finer cached one when possible (``resampled``); otherwise
  ``NOT_CACHED``.
* ``local_only=False``: the cache is first brought up to date from the source
  when it is behind (see :meth:`DataService._needs_tail_refresh`), then the window
  is cut from it. Only what is missing is downloaded: the tail from a little
  before the newest final bar (the overlap is compared to catch new split or
  dividend adjustments, which trigger a full re-download so the cache always
  equals a fresh download), and the head when the window reaches further back
  than the cache covers. If the source fails, or the download cannot be saved
  (disk full), cached bars are still served, with ``stale=True`` and a warning
  naming the failure. A cache file found damaged while answering is set aside
  and downloaded afresh.

Downloads of one dataset are serialised by the store's lock, so two requests for
the same missing data cause one download: the second finds it cached.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import resample
from .bars import Bars
from .enums import DataResolution
from .errors import (
    CacheCorruptError,
    DataNotFoundError,
    DataProviderError,
    InternalServerError,
    NoDataError,
    NotCachedError,
    RangeNotAvailableError,
    StorageFullError,
    SymbolNotFoundError,
    UpstreamError,
)
from .frames import PRICE_COLUMNS, bar_ends
from .query import BarsQuery, lookback_start, select_window
from .sources.base import FetchResult, Source
from .store import DatasetInfo, DatasetMeta, ParquetStore

__all__ = ["BarsResult", "DataService", "RefreshPolicy"]

logger = logging.getLogger(__name__)

StatusCallback = Callable[[str, dict[str, Any]], None]
ItemCallback = Callable[[str, "BarsResult | DataProviderError"], None]

#: Relative difference between a cached bar and the same bar downloaded again
#: above which the history is taken to have been re-adjusted (split, dividend).
ADJUSTMENT_TOLERANCE = 1e-6
#: Extra look-back of a first download, so the window counted back from the newest bar is covered.
_INITIAL_SLACK = pd.Timedelta(days=7)


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

    def summary(self) -> dict[str, Any]:
        """JSON-safe facts about the result (no rows): what callbacks and replies carry."""
        start_date, end_date = self.bars.span_iso()
        return {
            "ticker": self.ticker,
            "resolution": self.resolution.value,
            "rows": len(self.bars),
            "start_date": start_date,
            "end_date": end_date,
            "timezone": self.timezone,
            "source": self.source,
            "stale": self.stale,
            "warnings": list(self.warnings),
            "last_fetched": None if self.last_fetched is None else self.last_fetched.isoformat(),
        }


@dataclass(frozen=True)
class RefreshPolicy:
    """How eagerly the cache is brought up to date from the source.

    Attributes
    ----------
    min_interval_intraday, min_interval_daily : pandas.Timedelta
        A dataset is not asked for again sooner than this after the last time.
    overlap_bars : int
        How many final bars before the newest are downloaded again, to catch
        re-adjusted history.
    """

    min_interval_intraday: pd.Timedelta = pd.Timedelta(minutes=1)
    min_interval_daily: pd.Timedelta = pd.Timedelta(minutes=5)
    overlap_bars: int = 5

    def min_interval(self, resolution: DataResolution) -> pd.Timedelta:
        """The minimum time between two downloads of one dataset."""
        return self.min_interval_intraday if resolution.is_intraday else self.min_interval_daily


class DataService:
    """Answers bar queries from the cache, topping it up from ``source`` as needed.

    Parameters
    ----------
    store : ParquetStore
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
    >>> service = DataService(ParquetStore(data_dir), YahooSource())     # doctest: +SKIP
    >>> service.get_bars(BarsQuery("SPY", DataResolution.DAY_01)).frame.tail()
    """

    def __init__(
        self,
        store: ParquetStore,
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
        self._last_checked: dict[tuple[str, DataResolution], pd.Timestamp] = {}
        self._executor = ThreadPoolExecutor(max_workers=batch_workers, thread_name_prefix="batch")
        self._checked_guard = threading.Lock()

    def close(self) -> None:
        """Stop the batch workers (pending work is abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ queries
    def get_bars(
        self, query: BarsQuery, on_status: StatusCallback | None = None, *, wait: bool = True
    ) -> BarsResult | None:
        """Answer one query (see the module docstring for the rules).

        With ``wait=False`` the answer comes only if it needs nothing from the
        source (the cache has it, up to date); otherwise None, so the caller can
        hand the query to a thread that may wait on the network.

        Raises
        ------
        DataProviderError
            NOT_CACHED, NO_DATA, SYMBOL_NOT_FOUND, RANGE_NOT_AVAILABLE,
            UPSTREAM_*, CACHE_CORRUPT, STORAGE_FULL or BUSY, each with a message
            saying what to do.
        """
        try:
            return self._answer(query, on_status, wait)
        except CacheCorruptError:
            if query.local_only or self.source is None:
                raise
            # The damaged file is set aside now: asking again downloads the dataset afresh.
            return self._answer(query, on_status, wait)

    def _answer(self, query: BarsQuery, on_status: StatusCallback | None, wait: bool) -> BarsResult | None:
        """:meth:`get_bars`, without the second attempt after finding a damaged file."""
        status = on_status or (lambda _status, _detail: None)
        warnings: list[str] = []
        stale = False
        checked_fresh = False
        if not query.local_only and self.source is not None:
            try:
                if not self._behind(query):
                    checked_fresh = True
                elif not wait:
                    return None
                else:
                    checked_fresh = not self._refresh(query, status)
            except (UpstreamError, SymbolNotFoundError, RangeNotAvailableError, StorageFullError) as exc:
                if not self._has_data(query):
                    raise
                stale = True
                warnings.append(f"{exc.code}: {exc.message} Serving cached bars.")
                status("stale", {"code": exc.code, "message": exc.message})
        info = self._info(query.ticker, query.resolution, local_only=query.local_only)
        if info is None or info.rows == 0:
            return self._derived(query, status, warnings, stale)
        bars = select_window(lambda s, e: self._bars(info, s, e), info.last, query)
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

    def instruments(self) -> list[dict[str, Any]]:
        """One JSON-safe row per cached dataset: ticker, resolution, rows, first, last, ..."""
        return [
            {
                "ticker": info.ticker,
                "resolution": info.resolution.value,
                "rows": info.rows,
                "first": None if info.first is None else info.first.isoformat(),
                "last": None if info.last is None else info.last.isoformat(),
                "timezone": info.meta.timezone,
                "source": info.meta.source,
                "last_fetched": None if info.meta.last_fetched is None else info.meta.last_fetched.isoformat(),
            }
            for info in self.store.list_datasets()
        ]

    def import_frame(self, ticker: str, resolution: DataResolution, frame: pd.DataFrame, timezone: str) -> DatasetInfo:
        """Merge bars from a user's file into the cache (the file wins where both have a bar)."""
        with self.store.lock(ticker, resolution):
            info = self._info(ticker, resolution, local_only=False)
            old = self._read(info, None, None) if info is not None else None
            merged = frame if old is None else _merge(old.tz_convert(timezone), frame, frame.index[0])
            meta = DatasetMeta(timezone=timezone, source="import", coverage_start=_first_day_start(merged))
            return self.store.write(ticker, resolution, merged, meta)

    # ----------------------------------------------------------- internals
    def _info(self, ticker: str, resolution: DataResolution, *, local_only: bool) -> DatasetInfo | None:
        """The dataset's info; a corrupt file (now quarantined) counts as missing unless local_only."""
        try:
            return self.store.info(ticker, resolution)
        except CacheCorruptError:
            if local_only:
                raise
            return None

    def _bars(self, info: DatasetInfo, start: pd.Timestamp | None, end: pd.Timestamp | None) -> Bars:
        bars = self.store.bars(info.ticker, info.resolution, start, end)
        if bars is None:  # removed between info and read
            raise CacheCorruptError(f"{info.ticker} {info.resolution.value} vanished while being read; ask again")
        return bars

    def _read(self, info: DatasetInfo, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
        return self._bars(info, start, end).to_frame()

    def _has_data(self, query: BarsQuery) -> bool:
        info = self._info(query.ticker, query.resolution, local_only=False)
        if info is not None and info.rows:
            return True
        return self._derivation_source(query) is not None

    def _derivation_source(self, query: BarsQuery) -> DatasetInfo | None:
        for source_resolution in resample.derivation_sources(query.resolution):
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
                    else "ask without local_only=True to download it, or import a file with `python -m server import`"
                )
                raise NotCachedError(
                    f"{query.ticker} {query.resolution.value} is not in the cache (nor any finer resolution "
                    f"to derive it from): {remedy}",
                    ticker=query.ticker,
                )
            raise NoDataError(f"no {query.resolution.value} bars for {query.ticker}", ticker=query.ticker)
        status("resampling", {"from": info.resolution.value})
        target_width = query.resolution.nominal_duration
        start = lookback_start(query, info.last)
        read_start = None if start is None else start - target_width
        source_frame = self._read(info, read_start, None)
        coverage = info.meta.coverage_start if not info.meta.history_complete else None
        if read_start is not None:
            coverage = read_start if coverage is None else max(coverage, read_start)
        derived = resample.resample_bars(source_frame, info.resolution, query.resolution, coverage_start=coverage)
        if derived.empty:
            raise NoDataError(f"no {query.resolution.value} bars for {query.ticker} in the cache", ticker=query.ticker)
        derived_bars = Bars.from_frame(derived)
        bars = select_window(derived_bars.between, derived_bars.last, query)
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

    # -------------------------------------------------------------- refresh
    def _refresh(self, query: BarsQuery, status: StatusCallback) -> bool:
        """Bring the dataset up to date for ``query`` (tail, then head), holding its lock.

        Returns whether the source was asked for anything.
        """
        key = (query.ticker, query.resolution)
        downloaded = False
        with self.store.lock(*key):
            info = self._info(*key, local_only=False)
            now = self.clock()
            if self._needs_tail_refresh(info, query, now):
                status("downloading", {"part": "latest"})
                downloaded = True
                try:
                    info = self._refresh_tail(query, info, now)
                except DataNotFoundError:
                    self._mark_checked(key, now)  # a definite answer: do not ask again at once
                    raise
                self._mark_checked(key, now)  # upstream failures are not marked, so they stay visible
            needs_history, start = self._history_gap(info, query)
            if needs_history:
                status("downloading", {"part": "history"})
                downloaded = True
                self._refresh_head(query, info, start)
        return downloaded

    def _behind(self, query: BarsQuery) -> bool:
        """Whether :meth:`_refresh` would ask the source (checked without the dataset's lock)."""
        try:
            info = self._info(query.ticker, query.resolution, local_only=False)
        except DataProviderError:
            return True
        if info is None or info.rows == 0 or self._needs_tail_refresh(info, query, self.clock()):
            return True
        return self._history_gap(info, query)[0]

    @staticmethod
    def _history_gap(info: DatasetInfo | None, query: BarsQuery) -> tuple[bool, pd.Timestamp | None]:
        """Whether the query reaches back before what the cache covers, and from when."""
        if info is None or not info.rows or info.meta.history_complete:
            return False, None
        start = lookback_start(query, info.last)
        return start is None or start < (info.meta.coverage_start or info.first), start

    def _needs_tail_refresh(self, info: DatasetInfo | None, query: BarsQuery, now: pd.Timestamp) -> bool:
        """Whether newer bars may exist that the query could need.

        Not when the query ends before the newest cached bar, nor sooner than the
        policy's minimum interval after the last download; otherwise yes when the
        newest bar was still forming or a new bar may have started since.
        """
        if info is None or info.rows == 0:
            return True
        if query.time_end is not None and query.time_end.end_instant(info.meta.timezone) <= info.last:
            return False
        checked = max(
            [t for t in (info.meta.last_fetched, self._last_checked.get((info.ticker, info.resolution))) if t],
            default=None,
        )
        if checked is not None and now - checked < self.policy.min_interval(info.resolution):
            return False
        last_end = bar_ends(pd.DatetimeIndex([info.last]), info.resolution)[0]
        return info.meta.forming_from is not None or now >= last_end

    def _mark_checked(self, key: tuple[str, DataResolution], now: pd.Timestamp) -> None:
        with self._checked_guard:
            self._last_checked[key] = now

    def _refresh_tail(self, query: BarsQuery, info: DatasetInfo | None, now: pd.Timestamp) -> DatasetInfo | None:
        ticker, resolution = query.ticker, query.resolution
        if info is None or info.rows == 0:
            start = lookback_start(query, now)
            if start is not None:
                # The newest bar may be days old (weekends, holidays) and the
                # exchange's date may lag UTC's: reach back far enough for both.
                start = start - _INITIAL_SLACK
            fetched = self._fetch(ticker, resolution, start, None)
            if fetched.frame.empty:
                raise NoDataError(
                    f"the source has no {resolution.value} bars for {ticker} in the requested window",
                    ticker=ticker,
                )
            meta = DatasetMeta(
                timezone=fetched.timezone,
                source=self.source.name,
                last_fetched=now,
                coverage_start=_coverage_start(start, fetched),
                history_complete=start is None,
                forming_from=_forming_from(fetched.frame, resolution, now),
            )
            return self.store.write(ticker, resolution, fetched.frame, meta)

        old = self._read(info, None, None)
        final = old if info.meta.forming_from is None else old[old.index < info.meta.forming_from]
        overlap = self.policy.overlap_bars
        overlap_from = final.index[-overlap] if len(final) >= overlap else old.index[0]
        fetched = self._fetch(ticker, resolution, overlap_from.tz_convert("UTC"), None)
        if fetched.frame.empty:
            return info
        new = fetched.frame.tz_convert(info.meta.timezone)
        if _readjusted(final, new, fetched.corporate_actions):
            logger.info("%s %s: history re-adjusted upstream; downloading it afresh", ticker, resolution.value)
            start = None if info.meta.history_complete else info.meta.coverage_start
            fetched = self._fetch(ticker, resolution, start, None)
            merged = fetched.frame
        else:
            merged = _merge(old, new, overlap_from)
        meta = info.meta.replace(
            timezone=fetched.timezone,
            source=self.source.name,
            last_fetched=now,
            forming_from=_forming_from(merged, resolution, now),
        )
        return self.store.write(ticker, resolution, merged.tz_convert(fetched.timezone), meta)

    def _refresh_head(self, query: BarsQuery, info: DatasetInfo, start: pd.Timestamp | None) -> None:
        coverage = info.meta.coverage_start or info.first
        old = self._read(info, None, None)
        try:
            fetched = self._fetch(query.ticker, query.resolution, start, coverage)
        except RangeNotAvailableError:
            # The source keeps nothing older (intraday limits): the cached bars are all there is.
            self.store.write(query.ticker, query.resolution, old, info.meta.replace(history_complete=True))
            return
        head = fetched.frame.tz_convert(info.meta.timezone)
        merged = _merge(head, old, coverage) if not head.empty else old
        meta = info.meta.replace(
            coverage_start=_coverage_start(start, fetched) if start is not None else merged.index[0].tz_convert("UTC"),
            history_complete=start is None,
        )
        self.store.write(query.ticker, query.resolution, merged, meta)

    def _fetch(
        self, ticker: str, resolution: DataResolution, start: pd.Timestamp | None, end: pd.Timestamp | None
    ) -> FetchResult:
        started = time.monotonic()
        result = self.source.fetch(ticker, resolution, start, end)
        logger.info(
            "fetched %s %s from %s: %d bars in %.2f s",
            ticker,
            resolution.value,
            self.source.name,
            len(result.frame),
            time.monotonic() - started,
        )
        return result

    # --------------------------------------------------------------- seeding
    def seed(self, datasets: Iterable[tuple[str, DataResolution, pd.DataFrame, str]], source: str) -> int:
        """Write each (ticker, resolution, frame, timezone) not yet cached; returns how many were written.

        Used to load the bundled sample data into an empty cache: existing
        datasets are never overwritten.
        """
        written = 0
        for ticker, resolution, frame, timezone in datasets:
            with self.store.lock(ticker, resolution):
                if self._info(ticker, resolution, local_only=False) is not None:
                    continue
                meta = DatasetMeta(timezone=timezone, source=source, coverage_start=_first_day_start(frame))
                self.store.write(ticker, resolution, frame, meta)
                written += 1
        return written


def _first_day_start(frame: pd.DataFrame) -> pd.Timestamp:
    """Local midnight of the first bar's day (UTC): a file is taken to hold its first day whole."""
    return frame.index[0].normalize().tz_convert("UTC")


def _merge(old: pd.DataFrame, new: pd.DataFrame, replace_from: pd.Timestamp) -> pd.DataFrame:
    """``old`` before ``replace_from`` followed by ``new`` (which wins from there on)."""
    merged = pd.concat([old[old.index < replace_from], new])
    merged = merged[~merged.index.duplicated(keep="last")]
    return merged.sort_index(kind="stable")


def _readjusted(final: pd.DataFrame, new: pd.DataFrame, actions: pd.DataFrame) -> bool:
    """Whether the source re-adjusted history: overlapping final bars differ, or a split/dividend came."""
    if len(actions) and len(final) and (actions.index > final.index[-1]).any():
        return True
    common = final.index.intersection(new.index)
    if common.empty:
        return False
    old_prices = final.loc[common, list(PRICE_COLUMNS)].to_numpy()
    new_prices = new.loc[common, list(PRICE_COLUMNS)].to_numpy()
    return not np.allclose(old_prices, new_prices, rtol=ADJUSTMENT_TOLERANCE, atol=0.0)


def _forming_from(frame: pd.DataFrame, resolution: DataResolution, now: pd.Timestamp) -> pd.Timestamp | None:
    """Start (UTC) of the first bar not yet closed at ``now``, or None if all are final."""
    if frame.empty:
        return None
    ends = bar_ends(frame.index, resolution)
    open_bars = frame.index[ends > now]
    return open_bars[0].tz_convert("UTC") if len(open_bars) else None


def _coverage_start(start: pd.Timestamp | None, fetched: FetchResult) -> pd.Timestamp:
    """From when the cache holds everything the source has, after downloading from ``start``."""
    first = fetched.frame.index[0].tz_convert("UTC") if len(fetched.frame) else None
    candidates = [t for t in (start, fetched.available_from) if t is not None]
    if not candidates:
        return first
    return max(candidates) if first is None else min(max(candidates), first)
