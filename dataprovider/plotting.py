"""Plotly charts of canonical OHLCV frames: candlesticks with volume, rebased comparisons, and live candlesticks.

:func:`candlestick` and :func:`compare` return a ``plotly.graph_objects.Figure``
and never show it; call ``fig.show()`` in a notebook or ``fig.write_image(...)``
(kaleido) to render it. plotly is imported when a chart is made, so this module
imports without it.

:func:`live_candlestick` returns a plotly ``FigureWidget`` (it needs anywidget)
that follows a live subscription: it starts as ``candlestick()`` of the cached
bars before the first live update and redraws itself from a thread of its own,
at most every ``redraw_interval`` seconds, in one ``batch_update`` per redraw
however many updates arrived meanwhile. The subscription's callback only records
the newest update of each bar time under a lock. A redraw replaces the candle of
an updated bar (the forming bar changes in place), appends new bar times, keeps
the last ``window`` candles, and colours candles and volume as ``candlestick()``
does. ``stop()`` ends the subscription and the redraws and leaves the chart as it
is; ``close()`` does the same and closes the widget. Its x values are ISO strings
of the same wall-clock times: a FigureWidget would send datetime64[ns] values to
the browser as integers, which plotly.js does not read as dates.

Times go to plotly as local wall-clock times (tz-naive, in the frame's exchange
timezone). plotly.js drops UTC offsets from date strings and its rangebreaks
match wall-clock hours, so a 09:30 New York bar sits at 09:30 on the chart, and
the overnight, weekend and holiday breaks line up with the bars, whatever the
timezone of the viewer.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable, Mapping
from functools import cache, reduce
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .enums import DataResolution
from .errors import DataProviderError, RequestTimeoutError
from .frames import OHLCV_COLUMNS, PRICE_COLUMNS
from .instruments import is_crypto

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .client import DataProviderLocal
    from .subscriptions import LiveBar, Subscription

__all__ = ["candlestick", "compare", "live_candlestick"]

logger = logging.getLogger(__name__)

_UP_COLOR = "#26a69a"
_DOWN_COLOR = "#ef5350"
_LINE_COLORS = ("#2962ff", "#ff9800", "#9c27b0", "#795548", "#607d8b", "#000000")
_DAY = pd.Timedelta(days=1)
_TEMPLATE = "plotly_white"


def candlestick(
    df: pd.DataFrame,
    title: str | None = None,
    volume: bool = True,
    moving_averages: Iterable[int] | Mapping[str, int] = (),
    *,
    ticker: str | None = None,
    height: int | None = None,
    gaps: bool | Literal["auto"] = "auto",
) -> go.Figure:
    """A candlestick chart of ``df``, with volume bars below and moving averages over the candles.

    Parameters
    ----------
    df : DataFrame
        OHLCV bars with a DatetimeIndex (a canonical frame, see
        :mod:`dataprovider.frames`); Volume is optional.
    title : str, optional
        Chart title; by default ``ticker`` and the bar resolution inferred from
        the index spacing (e.g. 'SPY 1d').
    volume : bool, default True
        Draw Volume in a second row sharing the x axis, each bar coloured like
        its candle. Left out when the frame has no Volume or every Volume is 0
        (indices such as ^GSPC report none).
    moving_averages : iterable of int or mapping of str to int, default ()
        Simple moving averages of Close drawn over the candles: window lengths
        in bars, named 'MA <n>' (``(20, 50)``), or a mapping from line name to
        window (``{"fast": 10}``). Each is the mean of the last n closes of
        ``df``, so the first n - 1 bars have none.
    ticker : str, optional
        Names the candle trace and the default title.
    height : int, optional
        Figure height in pixels; 600 with the volume row, 450 without.
    gaps : {'auto', True, False}, default 'auto'
        Whether to remove the times an exchange does not trade from the x axis
        (plotly rangebreaks). For daily bars: weekends, and the weekdays between
        the first and last bar that have no bar (holidays). For intraday bars
        also the overnight hours outside the session, which runs from the
        earliest bar start to the latest bar end (bar start plus the bar
        width) over all days of ``df``. Weekly and monthly bars get no breaks.
        'auto' removes them unless ``ticker`` is a crypto pair or ``df`` has a
        bar on a Saturday or Sunday (a market that trades every day).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces in order: the candles, one line per moving average, then the
        volume bars. No range slider; hover mode 'x unified'.

    Raises
    ------
    ValueError
        If ``df`` is empty, lacks one of Open, High, Low, Close, or a moving
        average window is not a positive integer.
    ImportError
        If plotly is not installed.

    Examples
    --------
    >>> from dataprovider.sources.sample import load_sample, sample_entries
    >>> spy = load_sample(next(e for e in sample_entries() if e.ticker == "SPY"))
    >>> fig = candlestick(spy.loc["2017-07":], moving_averages=(20, 50), ticker="SPY")
    >>> [trace.name for trace in fig.data]
    ['SPY', 'MA 20', 'MA 50', 'Volume']
    >>> fig.layout.title.text
    'SPY 1d'
    """
    go, make_subplots = _plotly()
    _check_frame(df, PRICE_COLUMNS, "candlestick")
    windows = _moving_average_windows(moving_averages)
    wall = _wall_clock(df.index)
    step = _bar_step(wall)
    show_volume = volume and "Volume" in df.columns and bool((df["Volume"] != 0).any())

    if show_volume:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.75, 0.25])
    else:
        fig = make_subplots(rows=1, cols=1)
    fig.add_trace(
        go.Candlestick(
            x=wall,
            open=df["Open"],
            high=df["High"],
            low=df["Low"],
            close=df["Close"],
            name=ticker or "Price",
            increasing=dict(line_color=_UP_COLOR, fillcolor=_UP_COLOR),
            decreasing=dict(line_color=_DOWN_COLOR, fillcolor=_DOWN_COLOR),
        ),
        row=1,
        col=1,
    )
    for i, (name, window) in enumerate(windows.items()):
        fig.add_trace(
            go.Scatter(
                x=wall,
                y=df["Close"].rolling(window).mean().to_numpy(),
                name=name,
                mode="lines",
                line=dict(color=_LINE_COLORS[i % len(_LINE_COLORS)], width=1.5),
            ),
            row=1,
            col=1,
        )
    if show_volume:
        colors = np.where(_candle_directions(df), _UP_COLOR, _DOWN_COLOR)
        fig.add_trace(
            go.Bar(x=wall, y=df["Volume"], name="Volume", marker=dict(color=colors, line_width=0), showlegend=False),
            row=2,
            col=1,
        )
        fig.update_yaxes(title_text="Volume", row=2, col=1)

    if title is None:
        title = " ".join(part for part in (ticker, _resolution_label(step)) if part) or None
    breaks = _rangebreaks(wall, step) if _wants_gaps_removed(gaps, wall, ticker) else []
    logger.debug("candlestick %s: %d bars, step %s, rangebreaks %s", ticker, len(df), step, breaks)
    fig.update_xaxes(rangeslider_visible=False, rangebreaks=breaks, type="date")
    _apply_layout(fig, title, height or (600 if show_volume else 450))
    return fig


def compare(
    frames: Mapping[str, pd.DataFrame],
    normalize: bool = True,
    *,
    column: str = "Close",
    title: str | None = None,
) -> go.Figure:
    """One line per ticker of a batch result, optionally rebased to 100 at the first common date.

    Alignment rule: when every frame holds daily or coarser bars (all dated at
    local midnight), bars are matched by their local calendar date, so the
    BTC-USD bar of UTC day D lines up with the SPY bar of New York day D. Any
    intraday frame makes bars match by instant instead, shown as wall-clock
    time in the timezone of the first frame.

    Parameters
    ----------
    frames : mapping of str to DataFrame
        Ticker -> bars with a DatetimeIndex, as ``get_batch_data`` returns.
    normalize : bool, default True
        Rebase each series to 100 at the first date present in every frame
        and draw it from that date on, so every line starts at 100 and the
        ratio between any two of its points is the ratio of the prices.
        Without it, draw ``column`` as it is over each frame's whole range.
    column : str, default 'Close'
        The column to draw.
    title : str, optional
        Chart title; by default the tickers and, when rebased, the base date.

    Returns
    -------
    plotly.graph_objects.Figure
        One line trace per ticker, in the mapping's order; y axis titled
        'Rebased to 100' or ``column``.

    Raises
    ------
    ValueError
        If ``frames`` is empty, a frame is empty or lacks ``column``, or (with
        ``normalize``) the frames share no date or a value at the base date is 0.
    ImportError
        If plotly is not installed.

    Examples
    --------
    >>> from dataprovider.sources.sample import load_sample, sample_entries
    >>> batch = {e.ticker: load_sample(e).loc["2017"] for e in sample_entries()
    ...          if e.ticker in ("SPY", "AAPL") and e.resolution == "1d"}
    >>> fig = compare(batch)
    >>> [(trace.name, float(trace.y[0])) for trace in fig.data]
    [('SPY', 100.0), ('AAPL', 100.0)]
    """
    go, _ = _plotly()
    if not frames:
        raise ValueError("compare needs at least one frame; got an empty mapping")
    for name, frame in frames.items():
        _check_frame(frame, (column,), f"compare ({name})")
    series = _aligned_series(frames, column)
    if normalize:
        base = _first_common_key(series)
        series = {name: _rebased(values, base, name, column) for name, values in series.items()}

    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=values.index,
                y=values.to_numpy(),
                name=name,
                mode="lines",
                line=dict(color=_LINE_COLORS[i % len(_LINE_COLORS)], width=1.5),
            )
        )
    if title is None:
        title = ", ".join(series)
        if normalize:
            title += f": {column} rebased to 100 on {_format_key(base)}"
    fig.update_yaxes(title_text="Rebased to 100" if normalize else column)
    fig.update_xaxes(type="date")
    _apply_layout(fig, title, None)
    return fig


def live_candlestick(
    provider: DataProviderLocal,
    ticker: str,
    resolution: DataResolution | str,
    window: int = 200,
    *,
    title: str | None = None,
    redraw_interval: float = 0.25,
    volume: bool = True,
) -> go.FigureWidget:
    """A candlestick chart that follows the live bars of one ticker.

    Subscribes with ``history=window``, waits for the first live update, and
    draws :func:`candlestick` of the ``window`` cached bars before it, so history
    and live bars join without a gap or a duplicate. Then a thread redraws the
    chart at most every ``redraw_interval`` seconds with everything that arrived
    meanwhile, in one ``batch_update``: the forming bar replaces its candle, a
    new bar time adds one, and the chart keeps the last ``window`` candles.

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
        Draw Volume below the candles, as :func:`candlestick` does (left out
        when every cached Volume in the first window is 0).

    Returns
    -------
    plotly.graph_objects.FigureWidget
        Shows itself when it ends a cell, and keeps redrawing until stopped.
        ``.subscription`` is the live :class:`~dataprovider.subscriptions.Subscription`;
        ``stop()`` ends it and the redraws, drawing what arrived first, and leaves
        the chart on screen; ``close()`` stops and closes the widget. Feed failures
        are logged as warnings while the subscription keeps trying.

    Raises
    ------
    ValueError
        If ``window`` is not a positive integer or ``redraw_interval`` is not
        above 0.
    DataProviderError
        As :meth:`DataProviderLocal.subscribe` raises it (NOT_CACHED, UPSTREAM_UNAVAILABLE
        from a server that is offline without ``--replay``, ...); REQUEST_TIMEOUT
        when no live update arrives within the provider's ``timeout``.
    ImportError
        If plotly or anywidget is not installed.

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
    figure_class = _live_figure_class()
    resolution = DataResolution.parse(resolution)
    pending = _PendingBars(f"{ticker} {resolution.value}")
    subscription = provider.subscribe(ticker, resolution, pending.add, error_callback=pending.failed, history=window)
    try:
        frame = _bars_frame(pending.first_bars(provider.timeout))
        ticker = subscription.ticker
        figure = candlestick(frame, title or f"{ticker} {resolution.value} live", volume, ticker=ticker)
        figure.update_traces(x=_widget_times(frame.index))
        gaps = _wants_gaps_removed("auto", _wall_clock(frame.index), ticker)
        return figure_class(figure, subscription, pending, frame, int(window), float(redraw_interval), gaps)
    except BaseException:
        subscription.close()
        raise


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
    >>> from dataprovider.subscriptions import LiveBar
    >>> day = pd.Timestamp("2019-10-15", tz="UTC")
    >>> def bar(time, close):
    ...     return LiveBar("BTC-USD", DataResolution.DAY_01, time, 1.0, 2.0, 0.5, close, 10, False, 1)
    >>> frame = _bars_frame([bar(day, 1.5)])
    >>> _merged(frame, [bar(day, 1.8), bar(day + _DAY, 1.1)], 5)["Close"].tolist()
    [1.8, 1.1]
    >>> len(_merged(frame, [bar(day + _DAY, 1.1)], 1))
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
    return _wall_clock(index).strftime("%Y-%m-%dT%H:%M:%S").tolist()


@cache
def _live_figure_class() -> type:
    """The FigureWidget subclass live_candlestick returns (made once plotly is imported)."""
    go, _ = _plotly()
    try:
        import anywidget  # noqa: F401  (plotly's FigureWidget is an anywidget)
    except ImportError as exc:
        raise ImportError("live_candlestick needs anywidget: install it with `pip install anywidget`") from exc

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
            wall = _wall_clock(frame.index)
            breaks = _rangebreaks(wall, _bar_step(wall)) if self._gaps else []
            x = _widget_times(frame.index)
            with self.batch_update():
                self.data[0].update(x=x, open=frame["Open"], high=frame["High"], low=frame["Low"], close=frame["Close"])
                if len(self.data) > 1:  # the volume bars, the only other trace
                    colors = np.where(_candle_directions(frame), _UP_COLOR, _DOWN_COLOR)
                    self.data[1].update(x=x, y=frame["Volume"], marker_color=colors)
                if breaks != self._breaks:
                    self._breaks = breaks
                    self.update_xaxes(rangebreaks=breaks)

    return LiveCandlestick


def _candle_directions(df: pd.DataFrame) -> np.ndarray:
    """True where plotly draws a bar's candle in the increasing colour.

    plotly's rule: Close above Open is up and below is down; when Close equals
    Open the bar is up if Close is above the previous Close, down if below, and
    keeps the previous bar's direction if equal (the first bar counts as up).

    Examples
    --------
    >>> bars = pd.DataFrame({"Open": [1.0, 2.0, 2.0, 3.0], "Close": [2.0, 2.0, 1.0, 1.0]})
    >>> _candle_directions(bars).tolist()
    [True, True, False, False]
    """
    close = df["Close"].to_numpy(dtype="float64")
    open_ = df["Open"].to_numpy(dtype="float64")
    previous = np.concatenate([[np.nan], close[:-1]])
    direction = np.where(close > open_, 1.0, np.where(close < open_, 0.0, np.nan))
    by_previous = np.isnan(direction) & ~np.isnan(previous) & (close != previous)
    direction[by_previous] = close[by_previous] > previous[by_previous]
    return pd.Series(direction).ffill().fillna(1.0).to_numpy(dtype=bool)


def _plotly():
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as exc:
        raise ImportError("dataprovider.plotting needs plotly: install it with `pip install plotly`") from exc
    return go, make_subplots


def _check_frame(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    if len(df) == 0:
        raise ValueError(f"{what}: the frame is empty; there are no bars to draw")
    missing = [col for col in columns if col not in df.columns]
    if missing:
        raise ValueError(f"{what}: the frame lacks column(s) {', '.join(missing)}; it has {list(df.columns)}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise ValueError(f"{what}: the frame needs a DatetimeIndex; got {type(df.index).__name__}")


def _moving_average_windows(spec: Iterable[int] | Mapping[str, int]) -> dict[str, int]:
    items = spec.items() if isinstance(spec, Mapping) else ((f"MA {w}", w) for w in spec)
    windows = {}
    for name, window in items:
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
            raise ValueError(f"moving average {name!r}: the window must be a positive number of bars; got {window!r}")
        windows[name] = int(window)
    return windows


def _wall_clock(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The index as tz-naive local times (a naive index is taken to be local already)."""
    return index.tz_localize(None) if index.tz is not None else index


def _bar_step(wall: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The most common spacing between consecutive bars (the bar width), None for one bar."""
    if len(wall) < 2:
        return None
    return pd.Series(np.diff(wall.asi8)).mode().iloc[0] * pd.Timedelta(1, "ns")


def _resolution_label(step: pd.Timedelta | None) -> str | None:
    if step is None:
        return None
    if step < _DAY:
        return next((r.value for r in DataResolution if r.is_intraday and r.minutes * 60 == step.total_seconds()), None)
    days = step / _DAY
    if days == 1:
        return DataResolution.DAY_01.value
    if days == 7:
        return DataResolution.WEEK_01.value
    return DataResolution.MONTH_01.value if 28 <= days <= 31 else None


def _wants_gaps_removed(gaps: bool | str, wall: pd.DatetimeIndex, ticker: str | None) -> bool:
    if gaps == "auto":
        trades_every_day = bool((wall.dayofweek >= 5).any())
        return not trades_every_day and not (ticker is not None and is_crypto(ticker))
    if isinstance(gaps, bool):
        return gaps
    raise ValueError(f"gaps must be 'auto', True or False; got {gaps!r}")


def _rangebreaks(wall: pd.DatetimeIndex, step: pd.Timedelta | None) -> list[dict]:
    """plotly rangebreaks removing weekends, bar-less weekdays and (intraday) the hours outside the session."""
    if step is None or step > _DAY:
        return []
    days = wall.normalize().unique()
    holidays = pd.bdate_range(days[0], days[-1]).difference(days)
    breaks: list[dict] = [dict(bounds=["sat", "mon"])]
    if len(holidays):
        breaks.append(dict(values=list(holidays.strftime("%Y-%m-%d"))))
    if step < _DAY:
        time_of_day = wall - wall.normalize()
        session_open, session_close = time_of_day.min(), (time_of_day + step).max()
        if session_open > pd.Timedelta(0) or session_close < _DAY:
            breaks.append(dict(bounds=[_hours(session_close), _hours(session_open)], pattern="hour"))
    return breaks


def _hours(offset: pd.Timedelta) -> float:
    return offset.total_seconds() / 3600


def _aligned_series(frames: Mapping[str, pd.DataFrame], column: str) -> dict[str, pd.Series]:
    """Each frame's ``column`` keyed by local date (all daily) or by instant in the first frame's timezone."""
    walls = {name: _wall_clock(frame.index) for name, frame in frames.items()}
    daily = all(bool((wall == wall.normalize()).all()) for wall in walls.values())
    if not daily:
        tz = next(iter(frames.values())).index.tz
        walls = {
            name: frame.index.tz_convert(tz).tz_localize(None) if tz and frame.index.tz else walls[name]
            for name, frame in frames.items()
        }
    return {
        name: pd.Series(frame[column].to_numpy(dtype="float64"), index=walls[name], name=name)
        for name, frame in frames.items()
    }


def _first_common_key(series: Mapping[str, pd.Series]) -> pd.Timestamp:
    common = reduce(pd.Index.intersection, (values.index for values in series.values()))
    if len(common) == 0:
        spans = "; ".join(
            f"{name} {_format_key(s.index[0])} to {_format_key(s.index[-1])}" for name, s in series.items()
        )
        raise ValueError(f"compare(normalize=True): the frames share no date to rebase on ({spans})")
    return common.min()


def _rebased(values: pd.Series, base: pd.Timestamp, name: str, column: str) -> pd.Series:
    base_value = values.loc[base]
    if base_value == 0:
        raise ValueError(f"compare: cannot rebase {name}: its {column} on {_format_key(base)} is 0")
    return values.loc[base:] / base_value * 100


def _format_key(key: pd.Timestamp) -> str:
    return key.strftime("%Y-%m-%d") if key == key.normalize() else key.strftime("%Y-%m-%d %H:%M")


def _apply_layout(fig: go.Figure, title: str | None, height: int | None) -> None:
    fig.update_layout(
        template=_TEMPLATE,
        title=dict(text=title, x=0.01, xanchor="left") if title else None,
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        margin=dict(l=10, r=10, t=60 if title else 30, b=10),
        height=height,
    )
