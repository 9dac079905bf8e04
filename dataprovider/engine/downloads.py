"""Downloads: bringing one dataset up to date from the source, under the dataset's lock.

:class:`Downloads` asks the source only for what is missing: the tail from a
little before the newest final bar (the overlap is compared to catch new split or
dividend adjustments, which trigger a full re-download so the cache always
equals a fresh download; otherwise only the new bars are appended, or the range
from the first revised bar replaced, in one commit), and the head when a query reaches further back than
the cache covers. What to ask for and how the answer joins the cache are the
pure rules of :mod:`dataprovider.engine.refresh`; this module runs them against
the store and the source.

Downloads of one dataset are serialised by the store's lock, so two requests for
the same missing data cause one download: the second finds it cached.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from dataprovider.engine.datasets import DatasetInfo, DatasetMeta
from dataprovider.engine.refresh import (
    RefreshPolicy,
    coverage_start,
    first_difference,
    forming_from,
    history_gap,
    merge,
    needs_tail_refresh,
    readjusted,
)
from dataprovider.engine.store import DeltaStore
from dataprovider.engine.window import lookback_start
from dataprovider.enums import DataResolution
from dataprovider.errors import DataNotFoundError, DataProviderError, NoDataError, RangeNotAvailableError
from dataprovider.frames import empty_frame
from dataprovider.protocol.query import BarsQuery
from dataprovider.sources.base import FetchResult, Source

__all__ = ["Downloads"]

logger = logging.getLogger(__name__)

StatusCallback = Callable[[str, dict[str, Any]], None]

#: Extra look-back of a first download, so the window counted back from the newest bar is covered.
_INITIAL_SLACK = pd.Timedelta(days=7)


class Downloads:
    """Brings datasets up to date from ``source`` into ``store``, as eagerly as ``policy`` allows.

    Parameters
    ----------
    store : DeltaStore
        The cache written to.
    source : Source
        Where the bars come from.
    policy : RefreshPolicy
        How often a dataset may be asked for, and how many bars overlap.
    clock : callable
        Returns "now" as a tz-aware UTC Timestamp.
    """

    def __init__(
        self, store: DeltaStore, source: Source, policy: RefreshPolicy, clock: Callable[[], pd.Timestamp]
    ) -> None:
        self.store = store
        self.source = source
        self.policy = policy
        self.clock = clock
        # When the source last answered that a dataset had nothing new (not in the dataset's own metadata).
        self._last_checked: dict[tuple[str, DataResolution], pd.Timestamp] = {}
        self._checked_guard = threading.Lock()

    def behind(self, query: BarsQuery) -> bool:
        """Whether :meth:`refresh` would ask the source for ``query`` (checked without the dataset's lock)."""
        try:
            info = self.store.info_if_readable(query.ticker, query.resolution)
        except DataProviderError:
            return True
        if info is None or info.rows == 0 or self._needs_tail_refresh(info, query, self.clock()):
            return True
        return history_gap(info, query)[0]

    def refresh(self, query: BarsQuery, status: StatusCallback) -> bool:
        """Bring the dataset up to date for ``query`` (tail, then head), holding its lock.

        Returns whether the source was asked for anything. Raises the source's
        errors (UPSTREAM_*, SYMBOL_NOT_FOUND, ...) and the store's (STORAGE_FULL, BUSY).
        """
        key = (query.ticker, query.resolution)
        downloaded = False
        with self.store.lock(*key):
            info = self.store.info_if_readable(*key)
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
            needs_history, start = history_gap(info, query)
            if needs_history:
                status("downloading", {"part": "history"})
                downloaded = True
                self._refresh_head(query, info, start)
        return downloaded

    def _needs_tail_refresh(self, info: DatasetInfo | None, query: BarsQuery, now: pd.Timestamp) -> bool:
        checked = None if info is None else self._last_checked.get((info.ticker, info.resolution))
        return needs_tail_refresh(info, query, now, checked, self.policy.min_interval(query.resolution))

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
                coverage_start=coverage_start(start, fetched),
                history_complete=start is None,
                forming_from=forming_from(fetched.frame, resolution, now),
            )
            return self.store.write(ticker, resolution, fetched.frame, meta)

        bars = self.store.bars_of(info)
        final = bars if info.meta.forming_from is None else bars.between(None, info.meta.forming_from)
        overlap_from = (final if len(final) else bars).tail(max(self.policy.overlap_bars, 1)).first
        recent = bars.between(overlap_from, None).to_frame()
        fetched = self._fetch(ticker, resolution, overlap_from.tz_convert("UTC"), None)
        if fetched.frame.empty:
            return info
        new = fetched.frame.tz_convert(info.meta.timezone)
        recent_final = recent if info.meta.forming_from is None else recent[recent.index < info.meta.forming_from]
        if readjusted(recent_final, new, fetched.corporate_actions):
            logger.info("%s %s: history re-adjusted upstream; downloading it afresh", ticker, resolution.value)
            start = None if info.meta.history_complete else info.meta.coverage_start
            fetched = self._fetch(ticker, resolution, start, None)
            meta = info.meta.replace(
                timezone=fetched.timezone,
                source=self.source.name,
                last_fetched=now,
                forming_from=forming_from(fetched.frame, resolution, now),
            )
            return self.store.write(ticker, resolution, fetched.frame, meta)
        tail = merge(recent, new, overlap_from)
        meta = info.meta.replace(source=self.source.name, last_fetched=now, forming_from=forming_from(tail, resolution, now))
        return self._commit_tail(ticker, resolution, recent, tail, meta)

    def _commit_tail(
        self, ticker: str, resolution: DataResolution, recent: pd.DataFrame, tail: pd.DataFrame, meta: DatasetMeta
    ) -> DatasetInfo:
        """Commit what a refresh changed at the end of a dataset: an append of the new bars when the cached
        ones came back unchanged, else a replacement from the first bar that differs (one commit either way)."""
        changed_from = first_difference(recent, tail)
        if changed_from is None:
            return self.store.append(ticker, resolution, tail.iloc[len(recent) :], meta)
        return self.store.replace_from(ticker, resolution, changed_from, tail[tail.index >= changed_from], meta)

    def _refresh_head(self, query: BarsQuery, info: DatasetInfo, start: pd.Timestamp | None) -> None:
        coverage = info.meta.coverage_start or info.first
        try:
            fetched = self._fetch(query.ticker, query.resolution, start, coverage)
        except RangeNotAvailableError:
            # The source keeps nothing older (intraday limits): the cached bars are all there is.
            nothing = empty_frame(query.resolution, info.meta.timezone)
            self.store.append(query.ticker, query.resolution, nothing, info.meta.replace(history_complete=True))
            return
        head = fetched.frame.tz_convert(info.meta.timezone)
        head = head[head.index < info.first]  # older than the cache: the cached bars stay as they are
        oldest = head.index[0] if len(head) else info.first
        meta = info.meta.replace(
            coverage_start=coverage_start(start, fetched) if start is not None else oldest.tz_convert("UTC"),
            history_complete=start is None,
        )
        self.store.prepend(query.ticker, query.resolution, head, meta)

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
