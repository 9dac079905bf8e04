"""A candlestick chart that follows the live bars of one ticker: :func:`live_candlestick`.

:func:`live_candlestick` returns a :class:`LiveCandlestick`, a plotly
``FigureWidget`` (it needs anywidget) that follows a live subscription: it starts
as :func:`~dataprovider.notebook.charts.candlestick` of the cached bars before
the first live update and redraws itself from a thread of its own, at most every
``redraw_interval`` seconds, in one ``batch_update`` per redraw however many
updates arrived meanwhile. The subscription's callback only records the newest
update of each bar time under a lock. A redraw replaces the candle of an updated
bar (the forming bar changes in place), appends new bar times, keeps the last
``window`` candles, and colours candles and volume as ``candlestick()`` does.
``stop()`` ends the subscription and the redraws and leaves the chart as it is;
``close()`` does the same and closes the widget. Its x values are ISO strings of
the same wall-clock times (see :mod:`dataprovider.notebook.axes`): a
FigureWidget would send datetime64[ns] values to the browser as integers, which
plotly.js does not read as dates.

Unlike :mod:`dataprovider.notebook.charts`, this module imports plotly when it is
imported: without plotly or anywidget, importing it raises ImportError saying to
``pip install plotly anywidget``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dataprovider.enums import DataResolution
from dataprovider.errors import DataProviderError, RequestTimeoutError
from dataprovider.frames import OHLCV_COLUMNS
from dataprovider.notebook.axes import (
    DOWN_COLOR,
    UP_COLOR,
    bar_step,
    candle_directions,
    rangebreaks,
    wall_clock,
    wants_gaps_removed,
)
from dataprovider.notebook.charts import candlestick

try:
    import anywidget  # noqa: F401  (plotly's FigureWidget is an anywidget; without it plotly offers a stand-in)
    import plotly.graph_objects as go
except ImportError as exc:
    raise ImportError(
        "dataprovider.notebook.live_chart needs plotly and anywidget: install them with "
        "`pip install 'dataprovider[notebook]'` (or `pip install plotly anywidget`)"
    ) from exc

if TYPE_CHECKING:
    from dataprovider.client.provider import DataProviderLocal
    from dataprovider.client.subscriptions import LiveBar, Subscription

__all__ = ["LiveCandlestick", "live_candlestick"]

logger = logging.getLogger(__name__)


def live_candlestick(
    provider: DataProviderLocal,
    ticker: str,
    resolution: DataResolution | str,
    window: int = 200,
    *,
    title: str | None = None,
    redraw_interval: float = 0.25,
    volume: bool = True,
) -> LiveCandlestick:
    """A candlestick chart that follows the live bars of one ticker.

    Subscribes with ``history=window``, waits for the first live update, and
    draws :func:`~dataprovider.notebook.charts.candlestick` of the ``window``
    cached bars before it, so history and live bars join without a gap or a
    duplicate. Then a thread redraws the chart at most every ``redraw_interval``
    seconds with everything that arrived meanwhile, in one ``batch_update``: the
    forming bar replaces its candle, a new bar time adds one, and the chart keeps
    the last ``window`` candles.

    Parameters
    ----------
    provider : DataProviderLocal
        The client to subscribe with.
    ticker : str
        A Yahoo Finance symbol.
    resolution : DataResolution or str
        Bar width.
    window : int, default 200
        How many candles the chart shows.
    title : str, optional
        Chart title; by default ticker, resolution and 'live' ('BTC-USD 1d live').
    redraw_interval : float, default 0.25
        The shortest time between two redraws, in seconds.
    volume : bool, default True
        Draw Volume below the candles, as ``candlestick()`` does (left out
        when every cached Volume in the first window is 0).

    Returns
    -------
    LiveCandlestick
        A plotly ``FigureWidget``: shows itself when it ends a cell, and keeps
        redrawing until stopped. ``.subscription`` is the live
        :class:`~dataprovider.client.subscriptions.Subscription`; ``stop()`` ends
        it and the redraws, drawing what arrived first, and leaves the chart on
        screen; ``close()`` stops and closes the widget. Feed failures are logged
        as warnings while the subscription keeps trying.

    Raises
    ------
    ValueError
        If ``window`` is not a positive integer or ``redraw_interval`` is not
        above 0.
    DataProviderError
        As :meth:`DataProviderLocal.subscribe` raises it (NOT_CACHED, UPSTREAM_UNAVAILABLE
        from a server that is offline without ``--replay``, ...); REQUEST_TIMEOUT
        when no live update arrives within the provider's ``timeout``.

    Examples
    --------
    Against a server started with ``python -m server --replay 5``:

    >>> chart = live_candlestick(provider, "BTC-USD", "1d", window=100)  # doctest: +SKIP
    >>> chart                                                          # doctest: +SKIP
    >>> chart.close()                                                  # doctest: +SKIP
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be a positive number of candles; got {window!r}")
    if not redraw_interval > 0:
        raise ValueError(f"redraw_interval must be above 0 seconds; got {redraw_interval!r}")
    resolution = DataResolution.parse(resolution)
    pending = _PendingBars(f"{ticker} {resolution.value}")
    subscription = provider.subscribe(ticker, resolution, pending.add, error_callback=pending.failed, history=window)
    try:
        frame = _bars_frame(pending.first_bars(provider.timeout))
        ticker = subscription.ticker
        figure = candlestick(frame, title or f"{ticker} {resolution.value} live", volume, ticker=ticker)
        figure.update_traces(x=_widget_times(frame.index))
        gaps = wants_gaps_removed("auto", wall_clock(frame.index), ticker)
        return LiveCandlestick(figure, subscription, pending, frame, int(window), float(redraw_interval), gaps)
    except BaseException:
        subscription.close()
        raise


class LiveCandlestick(go.FigureWidget):
    """A candlestick FigureWidget redrawn from a live subscription; see :func:`live_candlestick`."""

    def __init__(
        self,
        figure: go.Figure,
        subscription: Subscription,
        pending: _PendingBars,
        frame: pd.DataFrame,
        window: int,
        redraw_interval: float,
        gaps: bool,
    ) -> None:
        # Set before the widget exists: a widget that fails to initialise is still closed when collected.
        self._subscription = subscription
        self._pending = pending
        self._frame = frame
        self._window = window
        self._gaps = gaps
        self._stopped = threading.Event()
        self._redraws = threading.Thread(
            target=self._redraw_every,
            args=(redraw_interval,),
            name=f"live chart {subscription.subscription_id}",
            daemon=True,
        )
        super().__init__(figure)
        self._breaks = [rb.to_plotly_json() for rb in self.layout.xaxis.rangebreaks]
        self._redraws.start()

    @property
    def subscription(self) -> Subscription:
        """The live subscription the chart follows."""
        return self._subscription

    def stop(self) -> None:
        """End the subscription and the redraws, after drawing what arrived; the chart stays shown."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._subscription.close()
        if self._redraws.is_alive() and threading.current_thread() is not self._redraws:
            self._redraws.join()
        self._redraw()

    def close(self) -> None:
        """:meth:`stop`, then close the widget (its views disappear)."""
        self.stop()
        super().close()

    def _redraw_every(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            try:
                self._redraw()
            except Exception:  # a failed redraw must not end the chart
                logger.exception("live chart %s: a redraw failed", self._subscription.subscription_id)

    def _redraw(self) -> None:
        bars = self._pending.take()
        if not bars:
            return
        frame = self._frame = _merged(self._frame, bars, self._window)
        wall = wall_clock(frame.index)
        breaks = rangebreaks(wall, bar_step(wall)) if self._gaps else []
        x = _widget_times(frame.index)
        with self.batch_update():
            self.data[0].update(x=x, open=frame["Open"], high=frame["High"], low=frame["Low"], close=frame["Close"])
            if len(self.data) > 1:  # the volume bars, the only other trace
                colors = np.where(candle_directions(frame), UP_COLOR, DOWN_COLOR)
                self.data[1].update(x=x, y=frame["Volume"], marker_color=colors)
            if breaks != self._breaks:
                self._breaks = breaks
                self.update_xaxes(rangebreaks=breaks)


class _PendingBars:
    """The live updates a chart has not drawn yet: the newest of each bar time, oldest first.

    The subscription's thread adds them, the chart's redraw thread takes them all
    at once; a lock keeps the two apart.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.error: DataProviderError | None = None
        self._bars: dict[pd.Timestamp, LiveBar] = {}
        self._lock = threading.Lock()
        self._live = threading.Event()

    def add(self, bar: LiveBar) -> None:
        with self._lock:
            self._bars[bar.time] = bar
        if bar.seq is not None:
            self._live.set()

    def failed(self, error: DataProviderError) -> None:
        self.error = error
        logger.warning("live chart %s: %s", self.key, error)

    def take(self) -> list[LiveBar]:
        with self._lock:
            bars, self._bars = list(self._bars.values()), {}
        return bars

    def first_bars(self, timeout: float) -> list[LiveBar]:
        """Wait for the first live update; take the cached bars delivered before it (or, if none, all bars)."""
        if not self._live.wait(timeout):
            reason = f"; the server's feed reported {self.error}" if self.error is not None else ""
            raise RequestTimeoutError(f"no live bar of {self.key} arrived within {timeout:g} s{reason}")
        with self._lock:
            first = list(itertools.takewhile(lambda bar: bar.seq is None, self._bars.values()))
            first = first or list(self._bars.values())
            for bar in first:
                del self._bars[bar.time]
        return first


def _bars_frame(bars: Iterable[LiveBar]) -> pd.DataFrame:
    """Live bars as an OHLCV frame indexed by bar time."""
    bars = list(bars)
    return pd.DataFrame(
        [bar.ohlcv() for bar in bars], index=pd.DatetimeIndex([bar.time for bar in bars]), columns=OHLCV_COLUMNS
    )


def _merged(frame: pd.DataFrame, bars: Iterable[LiveBar], window: int) -> pd.DataFrame:
    """``frame`` with each bar replacing the row of its time or added, cut to the last ``window`` rows.

    Examples
    --------
    >>> from dataprovider.client.subscriptions import LiveBar
    >>> day, next_day = pd.Timestamp("2019-10-15", tz="UTC"), pd.Timestamp("2019-10-16", tz="UTC")
    >>> def bar(time, close):
    ...     return LiveBar("BTC-USD", DataResolution.DAY_01, time, 1.0, 2.0, 0.5, close, 10, False, 1)
    >>> frame = _bars_frame([bar(day, 1.5)])
    >>> _merged(frame, [bar(day, 1.8), bar(next_day, 1.1)], 5)["Close"].tolist()
    [1.8, 1.1]
    >>> len(_merged(frame, [bar(next_day, 1.1)], 1))
    1
    """
    update = _bars_frame(bars)
    kept = frame[~frame.index.isin(update.index)]
    return pd.concat([kept, update]).sort_index().iloc[-window:]


def _widget_times(index: pd.DatetimeIndex) -> list[str]:
    """Wall-clock times as ISO strings: a FigureWidget would send datetime64[ns] values to the browser as integers.

    Examples
    --------
    >>> _widget_times(pd.DatetimeIndex(["2019-11-05 09:30"]).tz_localize("America/New_York"))
    ['2019-11-05T09:30:00']
    """
    return wall_clock(index).strftime("%Y-%m-%dT%H:%M:%S").tolist()
