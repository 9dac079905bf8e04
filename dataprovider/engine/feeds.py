"""Live bars of one (ticker, resolution): where they come from, as a series of updates.

A *feed* is asked, again and again, for the updates since the last time
(:meth:`Feed.step`), and says how long to wait before asking again. An update is
one bar and whether it is final: the bar still forming is sent again each time it
changes (``is_final`` false) and once more when it closes (``is_final`` true).
The server runs one feed per subscribed key, however many clients subscribe
(``server/socket/streams.py``), and sends its updates to all of them.

Two feeds:

* :class:`PollingFeed` asks the :class:`~dataprovider.engine.service.DataService` for the
  newest bars at the refresh policy's interval. The service downloads through its
  source's shared rate limiter and writes to the cache the way any request does
  (atomically), so final bars are in the cache before they are sent: history and
  live agree.
* :class:`ReplayFeed` plays the cached history forward as if live (``python -m server
  --replay SPEED``): ``speed`` bars a second, starting ``REPLAY_BARS`` bars before the
  end of the cache. Where a finer resolution is cached, each bar is first sent
  forming, built from the finer bars seen so far, then final. It reads the cache
  and writes nothing: the replayed bars are already there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from dataprovider import protocol
from dataprovider.engine.resample import derivation_sources
from dataprovider.engine.service import DataService
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import DataProviderError
from dataprovider.frames import bar_ends
from dataprovider.protocol.query import BarsQuery

__all__ = ["REPLAY_BARS", "BarUpdate", "Feed", "PollingFeed", "ReplayFeed"]

logger = logging.getLogger(__name__)

#: How many bars before the end of the cache a replay starts.
REPLAY_BARS = 500
#: The most forming updates a replayed bar gets (finer bars are grouped to stay below it).
MAX_FORMING_UPDATES = 12
#: Bars a poll asks the service for: enough to see every bar that closed since the last poll.
_POLL_ROWS = 10
#: The period a poll asks for: short, so that a first poll downloads little.
_POLL_PERIOD = {
    DataResolution.HOUR_01: DataPeriod.MONTH_01,
    DataResolution.DAY_01: DataPeriod.MONTH_03,
    DataResolution.WEEK_01: DataPeriod.YEAR_01,
    DataResolution.MONTH_01: DataPeriod.YEAR_02,
}


@dataclass(frozen=True)
class BarUpdate:
    """One bar as a subscriber sees it: its start time, OHLCV, and whether it is final."""

    time: pd.Timestamp
    bar: dict[str, Any]
    is_final: bool

    @classmethod
    def of(cls, time: pd.Timestamp, row: Any, is_final: bool) -> BarUpdate:
        """The update for one row of a canonical frame (``row`` has Open ... Volume attributes)."""
        return cls(time, protocol.bar_payload(time, row), is_final)


class Feed(Protocol):
    """Where the live bars of one key come from."""

    #: What the feed reads, for the log ('replay', 'polling yahoo', ...).
    name: str

    def step(self) -> tuple[list[BarUpdate], float | None]:
        """The updates since the last step, and the seconds to wait before the next (None: no more ever)."""
        ...


class PollingFeed:
    """Live bars from the service's source: the newest bars, asked for at the refresh interval.

    Parameters
    ----------
    service : DataService
        Answers (and caches) the polls; its source's rate limiter paces them.
    ticker, resolution :
        The key.
    interval : float, optional
        Seconds between polls (default: the service's refresh policy for the resolution,
        1 minute intraday and 5 minutes daily and coarser, which is also how often the
        service asks the source again).

    A failed poll raises the service's error (UPSTREAM_*, ...); the next poll tries
    again.
    """

    def __init__(
        self, service: DataService, ticker: str, resolution: DataResolution, interval: float | None = None
    ) -> None:
        self.service = service
        self.name = f"polling {service.source.name}"
        period = _POLL_PERIOD.get(resolution, DataPeriod.DAY_05)
        # Each poll downloads the newest bars through the service, which caches them.
        self.query = BarsQuery(ticker, resolution, period, limit=_POLL_ROWS, local_only=False)
        default = service.policy.min_interval(resolution).total_seconds()
        self.interval = float(interval if interval is not None else default)
        self._last_final: pd.Timestamp | None = None
        self._forming: BarUpdate | None = None

    def step(self) -> tuple[list[BarUpdate], float | None]:
        """Poll once: the bars that closed since the last poll, then the forming bar if it changed."""
        frame = self.service.get_bars(self.query).frame
        now = self.service.clock()
        closed = bar_ends(frame.index, self.query.resolution) <= now
        updates: list[BarUpdate] = []
        if self._last_final is None and closed.any():  # first poll: only the newest final bar
            first = int(closed.nonzero()[0][-1])
        else:
            first = 0
        for position, row in enumerate(frame.iloc[first:].itertuples(), start=first):
            time = row.Index
            if self._last_final is not None and time <= self._last_final:
                continue
            update = BarUpdate.of(time, row, bool(closed[position]))
            if update.is_final:
                self._last_final, self._forming = time, None
            elif update == self._forming:
                continue
            else:
                self._forming = update
            updates.append(update)
        return updates, self.interval


class ReplayFeed:
    """The cached history of a key played forward as if live, ``speed`` bars a second.

    Parameters
    ----------
    service : DataService
        Whose cache is replayed (``local_only``: nothing is downloaded or written).
    ticker, resolution :
        The key; a resolution that is not cached is derived from a finer one, as
        ``get_data`` does.
    speed : float
        Bars a second.
    bars : int
        How many bars before the end of the cache the replay starts (default
        ``REPLAY_BARS``).

    Raises
    ------
    DataProviderError
        NOT_CACHED (or another ``get_data`` error) when the key has nothing to replay.
    """

    name = "replay"

    def __init__(
        self, service: DataService, ticker: str, resolution: DataResolution, speed: float, bars: int = REPLAY_BARS
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be above 0 bars a second, got {speed}")
        whole = service.get_bars(BarsQuery(ticker, resolution, DataPeriod.YEAR_MAX, local_only=True)).frame
        self.resolution = resolution
        self.speed = float(speed)
        self._frame = whole.iloc[-bars:]
        self._finer = _finer_bars(service, ticker, resolution, self._frame)
        self._position = 0
        self._pending: list[BarUpdate] = []
        self._delay = 0.0

    def step(self) -> tuple[list[BarUpdate], float | None]:
        """The next update of the replay; None as the wait once the cache's end is reached."""
        if not self._pending:
            if self._position >= len(self._frame):
                return [], None
            self._pending = self._updates_of(self._position)
            self._position += 1
            self._delay = 1.0 / (self.speed * len(self._pending))
        return [self._pending.pop(0)], self._delay

    def _updates_of(self, position: int) -> list[BarUpdate]:
        """Bar ``position``: forming updates from the finer bars inside it, then the bar itself, final."""
        time = self._frame.index[position]
        final = BarUpdate.of(time, next(self._frame.iloc[position : position + 1].itertuples()), True)
        if self._finer is None:
            return [final]
        finer = self._finer
        inside = finer[(finer.index >= time) & (finer.index < bar_ends(pd.DatetimeIndex([time]), self.resolution)[0])]
        if inside.empty:
            return [final]
        # The bar so far after each finer bar (open first, high max, low min, close last,
        # volume sum), taken after every group-th one: at most MAX_FORMING_UPDATES updates.
        so_far = pd.DataFrame(
            {
                "Open": inside["Open"].iloc[0],
                "High": inside["High"].cummax(),
                "Low": inside["Low"].cummin(),
                "Close": inside["Close"],
                "Volume": inside["Volume"].cumsum(),
            }
        )
        group = -(-len(inside) // MAX_FORMING_UPDATES)
        steps = so_far.iloc[group - 1 :: group]
        return [*(BarUpdate.of(time, row, False) for row in steps.itertuples()), final]


def _finer_bars(
    service: DataService, ticker: str, resolution: DataResolution, frame: pd.DataFrame
) -> pd.DataFrame | None:
    """The bars of the coarsest cached resolution finer than ``resolution`` over ``frame``'s span, if any.

    Only resolutions cached as such count: one derived from a finer one would hide
    the finer one's detail.
    """
    if frame.empty:
        return None
    for source in derivation_sources(resolution):
        try:
            info = service.store.info(ticker, source)
            if info is None or info.rows == 0:
                continue
            finer = service.get_bars(BarsQuery(ticker, source, DataPeriod.YEAR_MAX, local_only=True)).frame
        except DataProviderError:  # a damaged finer file: replay without forming bars
            continue
        finer = finer[finer.index >= frame.index[0]].tz_convert(frame.index.tz)
        if not finer.empty:
            return finer
    return None
