"""Static plotly charts of canonical OHLCV frames: candlesticks with volume, and rebased comparisons.

:func:`candlestick` and :func:`compare` return a ``plotly.graph_objects.Figure``
and never show it; call ``fig.show()`` in a notebook or ``fig.write_image(...)``
(kaleido) to render it. plotly is imported when a chart is made, so this module
imports without it; a chart made without it raises ImportError saying to
``pip install plotly``. Times are drawn as wall-clock times of the exchange (see
:mod:`dataprovider.notebook.axes`); the live chart is in
:mod:`dataprovider.notebook.live_chart`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import reduce
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from dataprovider.enums import DataResolution
from dataprovider.frames import PRICE_COLUMNS
from dataprovider.notebook.axes import (
    DAY,
    DOWN_COLOR,
    LINE_COLORS,
    UP_COLOR,
    bar_step,
    candle_directions,
    check_frame,
    plotly,
    rangebreaks,
    wall_clock,
    wants_gaps_removed,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["candlestick", "compare"]

logger = logging.getLogger(__name__)

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
    go, make_subplots = plotly()
    check_frame(df, PRICE_COLUMNS, "candlestick")
    windows = _moving_average_windows(moving_averages)
    wall = wall_clock(df.index)
    step = bar_step(wall)
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
            increasing=dict(line_color=UP_COLOR, fillcolor=UP_COLOR),
            decreasing=dict(line_color=DOWN_COLOR, fillcolor=DOWN_COLOR),
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
                line=dict(color=LINE_COLORS[i % len(LINE_COLORS)], width=1.5),
            ),
            row=1,
            col=1,
        )
    if show_volume:
        colors = np.where(candle_directions(df), UP_COLOR, DOWN_COLOR)
        fig.add_trace(
            go.Bar(x=wall, y=df["Volume"], name="Volume", marker=dict(color=colors, line_width=0), showlegend=False),
            row=2,
            col=1,
        )
        fig.update_yaxes(title_text="Volume", row=2, col=1)

    if title is None:
        title = " ".join(part for part in (ticker, _resolution_label(step)) if part) or None
    breaks = rangebreaks(wall, step) if wants_gaps_removed(gaps, wall, ticker) else []
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
    go, _ = plotly()
    if not frames:
        raise ValueError("compare needs at least one frame; got an empty mapping")
    for name, frame in frames.items():
        check_frame(frame, (column,), f"compare ({name})")
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
                line=dict(color=LINE_COLORS[i % len(LINE_COLORS)], width=1.5),
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


def _moving_average_windows(spec: Iterable[int] | Mapping[str, int]) -> dict[str, int]:
    items = spec.items() if isinstance(spec, Mapping) else ((f"MA {w}", w) for w in spec)
    windows = {}
    for name, window in items:
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
            raise ValueError(f"moving average {name!r}: the window must be a positive number of bars; got {window!r}")
        windows[name] = int(window)
    return windows


def _resolution_label(step: pd.Timedelta | None) -> str | None:
    if step is None:
        return None
    if step < DAY:
        return next((r.value for r in DataResolution if r.is_intraday and r.minutes * 60 == step.total_seconds()), None)
    days = step / DAY
    if days == 1:
        return DataResolution.DAY_01.value
    if days == 7:
        return DataResolution.WEEK_01.value
    return DataResolution.MONTH_01.value if 28 <= days <= 31 else None


def _aligned_series(frames: Mapping[str, pd.DataFrame], column: str) -> dict[str, pd.Series]:
    """Each frame's ``column`` keyed by local date (all daily) or by instant in the first frame's timezone."""
    walls = {name: wall_clock(frame.index) for name, frame in frames.items()}
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
