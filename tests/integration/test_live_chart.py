"""live_candlestick against a real server replaying the sample cache (``live_server(replay=...)``).

Facts of the data used here (dataprovider/sample_data/README.md): a replay starts
REPLAY_BARS bars before the end of the cache; BTC-USD has 1h bars over the last
500 days of its 1d bars, so each replayed day is first sent forming; ^GSPC 1m
has no finer resolution and no volume (an index).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from dataprovider.engine.feeds import REPLAY_BARS
from dataprovider.errors import DataProviderError
from dataprovider.notebook.charts import candlestick
from tests.support.waiting import wait_until

pytest.importorskip("plotly", reason="plotly is not installed")
pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget")

from dataprovider.notebook.live_chart import live_candlestick  # noqa: E402  (it imports plotly and anywidget)

#: Bars a second: a whole replay (REPLAY_BARS bars) takes 5 s.
FAST = 100
#: Bars a second where the test needs no end of the replay.
SPEED = 40


def cached(provider, ticker: str, resolution: str) -> pd.DataFrame:
    return provider.get_data_socket(ticker, resolution, "max", local_only=True)


def candles(chart) -> pd.DataFrame:
    """The candles a chart shows, indexed by their (tz-naive, wall-clock) x."""
    trace = chart.data[0]
    columns = {"Open": trace.open, "High": trace.high, "Low": trace.low, "Close": trace.close}
    return pd.DataFrame(columns, index=pd.DatetimeIndex(trace.x).as_unit("ns"))


def wall_clock_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[["Open", "High", "Low", "Close"]]
    return rows.set_axis(frame.index.tz_localize(None).as_unit("ns"))


def assert_draws_like_candlestick(chart, expected) -> None:
    """The chart's traces and x-axis breaks equal those of the ``candlestick()`` figure ``expected``."""
    assert [(trace.type, trace.name) for trace in chart.data] == [(trace.type, trace.name) for trace in expected.data]
    for mine, theirs in zip(chart.data, expected.data, strict=True):
        np.testing.assert_array_equal(pd.DatetimeIndex(mine.x), pd.DatetimeIndex(theirs.x))
        fields = ("open", "high", "low", "close") if mine.type == "candlestick" else ("y",)
        for field in fields:
            np.testing.assert_array_equal(np.asarray(mine[field]), np.asarray(theirs[field]))
        if mine.type == "bar":
            assert list(mine.marker.color) == list(theirs.marker.color)
    breaks = [rb.to_plotly_json() for rb in chart.layout.xaxis.rangebreaks]
    assert breaks == [rb.to_plotly_json() for rb in expected.layout.xaxis.rangebreaks]


class Redraws:
    """Counts a chart's redraws (its outermost ``batch_update`` calls) and keeps the candles each one left."""

    def __init__(self, chart, monkeypatch) -> None:
        self.after: list[pd.DataFrame] = []
        original = chart.batch_update
        depth = 0  # plotly's own updates nest batch_update calls inside a redraw's

        @contextlib.contextmanager
        def recorded():
            nonlocal depth
            depth += 1
            try:
                with original():
                    yield
            finally:
                depth -= 1
            if depth == 0:
                self.after.append(candles(chart))

        monkeypatch.setattr(chart, "batch_update", recorded)


class Updates:
    """A subscription callback keeping every live bar as (wall-clock time, O, H, L, C)."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def __call__(self, bar) -> None:
        self.seen.append((bar.time.tz_localize(None), bar.open, bar.high, bar.low, bar.close))


def live_chart_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("live chart ")]


@pytest.mark.parametrize(("ticker", "resolution"), [("BTC-USD", "1d"), ("^GSPC", "1m")])
def test_the_chart_starts_as_the_cached_bars_before_the_replay(live_server, ticker, resolution):
    server = live_server(replay=SPEED)
    provider = server.client()
    chart = live_candlestick(provider, ticker, resolution, window=60, redraw_interval=3600)
    try:
        history = cached(provider, ticker, resolution).iloc[-REPLAY_BARS - 60 : -REPLAY_BARS]
        expected = candlestick(history, f"{ticker} {resolution} live", ticker=ticker)
        assert_draws_like_candlestick(chart, expected)
        assert chart.layout.title.text == f"{ticker} {resolution} live"
        # plotly's widget would send datetime64[ns] values to the browser as integers: the x are date strings.
        sent = chart.get_state()["_widget_data"][0]["x"]
        assert sent[0] == history.index[0].strftime("%Y-%m-%dT%H:%M:%S") and len(sent) == 60
        assert chart.subscription.subscription_id == f"live:{ticker}:{resolution}" and not chart.subscription.closed
    finally:
        chart.close()


def assert_every_redraw_shows_final_bars_then_the_latest_update(redraws, cache, seen, window) -> None:
    """Each redraw left ``window`` candles, one per bar time, all final but the newest, which was an update."""
    final = wall_clock_rows(cache)
    assert 0 < len(redraws.after) < len(seen) / 4, "a redraw draws many updates at once"
    for shown in redraws.after:
        assert len(shown) == window and shown.index.is_monotonic_increasing and shown.index.is_unique
        pd.testing.assert_frame_equal(shown.iloc[:-1], final.loc[shown.index[:-1]], check_names=False)
        newest = shown.iloc[-1]
        assert (newest.name, *newest) in seen, "the last candle is the latest update of its bar"


# SPY 1d: volume and holidays; ^GSPC 1m: no volume, and nights to leave out.
@pytest.mark.parametrize(("ticker", "resolution", "window"), [("SPY", "1d", 60), ("^GSPC", "1m", 450)])
def test_the_chart_follows_the_replay_in_batches_to_the_end_of_the_cache(
    live_server, monkeypatch, ticker, resolution, window
):
    server = live_server(replay=FAST)
    provider = server.client()
    updates = Updates()
    server.client().subscribe(ticker, resolution, updates)  # first: it sees every update the chart sees
    chart = live_candlestick(provider, ticker, resolution, window=window)
    redraws = Redraws(chart, monkeypatch)
    cache = cached(provider, ticker, resolution)
    last = wall_clock_rows(cache).iloc[-1]
    wait_until(
        lambda: redraws.after and redraws.after[-1].index[-1] == last.name,
        timeout=60,
        what="the last cached bar on the chart",
    )
    chart.close()

    assert_draws_like_candlestick(chart, candlestick(cache.iloc[-window:], ticker=ticker))
    assert_every_redraw_shows_final_bars_then_the_latest_update(redraws, cache, set(updates.seen), window)


def drawn_forming_then_final(redraws: list[pd.DataFrame], final: pd.DataFrame) -> list[tuple]:
    """(bar time, the first later redraw with a newer bar) for each redraw whose newest candle was still forming."""
    return [
        (shown.index[-1], next(later for later in redraws[position:] if later.index[-1] > shown.index[-1]))
        for position, shown in enumerate(redraws)
        if not shown.iloc[-1].equals(final.loc[shown.index[-1]]) and redraws[-1].index[-1] > shown.index[-1]
    ]


def test_a_forming_bar_replaces_its_candle_until_it_is_final(live_server, monkeypatch):
    server = live_server(replay=5)  # a day's 12 forming updates take most of its 0.2 s
    provider = server.client()
    updates = Updates()
    server.client().subscribe("BTC-USD", "1d", updates)
    chart = live_candlestick(provider, "BTC-USD", "1d", window=200)
    redraws = Redraws(chart, monkeypatch)
    cache = cached(provider, "BTC-USD", "1d")
    final = wall_clock_rows(cache)
    wait_until(
        lambda: drawn_forming_then_final(list(redraws.after), final),
        timeout=60,
        what="a forming bar drawn, then a newer one",
    )
    chart.close()

    assert_every_redraw_shows_final_bars_then_the_latest_update(redraws, cache, set(updates.seen), 200)
    for time_, later in drawn_forming_then_final(redraws.after, final):  # drawn again, final, in its place
        assert list(later.index).count(time_) == 1
        assert later.loc[time_].equals(final.loc[time_])


def test_close_ends_the_subscription_and_the_redraws(live_server, monkeypatch):
    server = live_server(replay=SPEED)
    provider = server.client()
    chart = live_candlestick(provider, "BTC-USD", "1d", window=30)
    redraws = Redraws(chart, monkeypatch)
    wait_until(lambda: redraws.after, what="a redraw")
    assert server.app.live.active() == {"live:BTC-USD:1d": 1}

    chart.close()
    assert chart.subscription.closed
    assert server.app.live.active() == {}
    assert live_chart_threads() == []
    drawn, count = candles(chart), len(redraws.after)
    time.sleep(20 / SPEED)  # 20 bars' time
    assert len(redraws.after) == count
    pd.testing.assert_frame_equal(candles(chart), drawn)
    chart.close()  # again: nothing left to do


def test_stop_ends_the_updates_and_keeps_the_widget(live_server):
    server = live_server(replay=SPEED)
    chart = live_candlestick(server.client(), "ETH-USD", "1d", window=30)
    chart.stop()
    assert chart.subscription.closed and server.app.live.active() == {}
    assert live_chart_threads() == []
    assert chart.comm is not None, "the widget is still open"
    chart.close()
    assert chart.comm is None


def test_bad_arguments_are_refused_before_subscribing(live_server):
    server = live_server(replay=SPEED)
    provider = server.client()
    for arguments in ({"window": 0}, {"window": 2.5}, {"window": True}, {"redraw_interval": 0}):
        with pytest.raises(ValueError, match="window|redraw_interval"):
            live_candlestick(provider, "BTC-USD", "1d", **arguments)
    assert server.app.live.active() == {} and server.app.live.streams_started == 0


def test_an_offline_server_without_replay_raises_the_subscription_error(live_server):
    server = live_server()
    with pytest.raises(DataProviderError) as info:
        live_candlestick(server.client(), "SPY", "1d")
    assert info.value.code == "UPSTREAM_UNAVAILABLE"
    assert live_chart_threads() == []


@pytest.mark.parametrize("missing", ["plotly", "anywidget"])
def test_the_module_says_what_to_install_when_plotly_or_anywidget_is_missing(missing):
    code = f"import sys; sys.modules[{missing!r}] = None; import dataprovider.notebook.live_chart"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImportError: dataprovider.notebook.live_chart needs plotly and anywidget" in result.stderr
    assert "pip install plotly anywidget" in result.stderr
