"""Tests for dataprovider.notebook.charts: the figures' traces, colours, moving averages, rangebreaks and rebasing.

The figures are built from the bundled real sample data (see
dataprovider/sample_data/README.md and /work/shared/data/README.md for the facts
used here: SPY has no bar on 2015-12-25, ^GSPC 1m runs 09:30 to 16:00 New York
on 2019-11-05..07). One test renders a PNG with kaleido when a Chromium is
installed.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import pandas as pd
import pytest

from dataprovider.engine.resample import resample_bars
from dataprovider.notebook.charts import candlestick, compare
from dataprovider.sources.sample import load_sample, sample_entries

pytest.importorskip("plotly", reason="plotly is not installed")


def sample(ticker: str, resolution: str = "1d") -> pd.DataFrame:
    return load_sample(next(e for e in sample_entries() if e.ticker == ticker and e.resolution == resolution))


@pytest.fixture(scope="module")
def spy() -> pd.DataFrame:
    return sample("SPY")


@pytest.fixture(scope="module")
def gspc_1m() -> pd.DataFrame:
    return sample("^GSPC", "1m")


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return sample("BTC-USD")


def x_values(trace) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(trace.x)


def rangebreaks(fig, axis: str = "xaxis") -> list[dict]:
    return [rb.to_plotly_json() for rb in fig.layout[axis].rangebreaks]


# ---------------------------------------------------------------------------
# candlestick: traces and layout


def test_daily_chart_has_candles_moving_averages_and_volume_in_two_rows(spy):
    frame = spy.loc["2017-07":]
    fig = candlestick(frame, moving_averages=(20, 50), ticker="SPY")

    assert [trace.type for trace in fig.data] == ["candlestick", "scatter", "scatter", "bar"]
    assert [trace.name for trace in fig.data] == ["SPY", "MA 20", "MA 50", "Volume"]
    assert [(trace.xaxis, trace.yaxis) for trace in fig.data] == [("x", "y")] * 3 + [("x2", "y2")]
    assert fig.layout.xaxis.matches == "x2"  # shared x axis
    price_domain, volume_domain = fig.layout.yaxis.domain, fig.layout.yaxis2.domain
    assert price_domain[1] - price_domain[0] == pytest.approx(3 * (volume_domain[1] - volume_domain[0]), rel=0.01)
    candles = fig.data[0]
    np.testing.assert_array_equal(candles.open, frame["Open"])
    np.testing.assert_array_equal(candles.close, frame["Close"])
    np.testing.assert_array_equal(fig.data[3].y, frame["Volume"])


def test_layout_defaults_and_no_range_slider(spy):
    fig = candlestick(spy.loc["2017-07":], ticker="SPY")

    assert fig.layout.title.text == "SPY 1d"
    assert fig.layout.hovermode == "x unified"
    assert fig.layout.legend.orientation == "h"
    assert fig.layout.xaxis.rangeslider.visible is False
    assert fig.layout.height == 600
    assert candlestick(spy.loc["2017-07":], title="My chart").layout.title.text == "My chart"


def test_x_values_are_local_wall_clock_times(gspc_1m):
    fig = candlestick(gspc_1m)

    x = x_values(fig.data[0])
    assert x.tz is None
    assert x[0] == pd.Timestamp("2019-11-05 09:30")
    assert (x == gspc_1m.index.tz_localize(None)).all()


def test_volume_bar_colours_follow_candle_direction_on_real_bars(spy):
    frame = spy.loc["2015"]
    fig = candlestick(frame)

    up = fig.data[0].increasing.line.color
    down = fig.data[0].decreasing.line.color
    assert up != down
    colours = np.asarray(fig.data[-1].marker.color)
    rising = (frame["Close"] > frame["Open"]).to_numpy()
    falling = (frame["Close"] < frame["Open"]).to_numpy()
    assert rising.sum() > 100 and falling.sum() > 100
    assert (colours[rising] == up).all()
    assert (colours[falling] == down).all()


def test_volume_colour_of_a_bar_with_close_equal_to_open_follows_plotly_rule():
    # plotly.js colours an Open == Close candle by its Close against the previous Close,
    # and keeps the previous bar's direction when that is equal too.
    frame = pd.DataFrame(
        {
            "Open": [10.0, 11.0, 11.0, 9.0, 9.0, 9.5],
            "High": [12.0] * 6,
            "Low": [8.0] * 6,
            "Close": [11.0, 11.0, 10.0, 9.0, 9.0, 9.5],
            "Volume": [1, 2, 3, 4, 5, 6],
        },
        index=pd.date_range("2024-01-02", periods=6, freq="B", tz="America/New_York"),
    )
    fig = candlestick(frame)

    up, down = fig.data[0].increasing.line.color, fig.data[0].decreasing.line.color
    assert list(fig.data[-1].marker.color) == [up, up, down, down, down, up]


def test_moving_averages_equal_rolling_means_of_close(spy):
    frame = spy.loc["2016"]
    fig = candlestick(frame, moving_averages={"fast": 5, "slow": 50})

    assert [trace.name for trace in fig.data[1:3]] == ["fast", "slow"]
    for trace, window in zip(fig.data[1:3], (5, 50), strict=True):
        expected = np.array([frame["Close"].iloc[i - window + 1 : i + 1].mean() for i in range(len(frame))])
        expected[: window - 1] = np.nan
        np.testing.assert_allclose(trace.y, expected, rtol=1e-12)
        assert np.isnan(trace.y[: window - 1]).all() and not np.isnan(trace.y[window - 1 :]).any()


@pytest.mark.parametrize("window", [0, -5, 2.5, True, "20"])
def test_moving_average_window_must_be_a_positive_integer(spy, window):
    with pytest.raises(ValueError, match="positive number of bars"):
        candlestick(spy.loc["2017"], moving_averages=(window,))


def test_volume_row_is_left_out_when_asked_or_when_every_volume_is_zero(spy, gspc_1m):
    assert (gspc_1m["Volume"] == 0).all()  # an index reports no volume
    for fig in (candlestick(gspc_1m), candlestick(spy.loc["2017"], volume=False)):
        assert [trace.type for trace in fig.data] == ["candlestick"]
        assert "yaxis2" not in fig.layout
        assert fig.layout.height == 450


def test_empty_frame_and_missing_columns_raise_value_error(spy):
    with pytest.raises(ValueError, match="empty"):
        candlestick(spy.iloc[:0])
    with pytest.raises(ValueError, match="High, Low"):
        candlestick(spy.drop(columns=["High", "Low"]))
    with pytest.raises(ValueError, match="gaps"):
        candlestick(spy.loc["2017"], gaps="yes")


# ---------------------------------------------------------------------------
# candlestick: rangebreaks


def test_daily_equity_breaks_weekends_and_the_weekdays_without_a_bar(spy):
    frame = spy.loc["2015"]
    fig = candlestick(frame, ticker="SPY")

    breaks = rangebreaks(fig)
    assert breaks[0] == {"bounds": ["sat", "mon"]}
    holidays = pd.DatetimeIndex(breaks[1]["values"])
    assert {"2015-12-25", "2015-11-26", "2015-07-03"} <= set(breaks[1]["values"])
    assert (holidays.dayofweek < 5).all()
    assert holidays.intersection(frame.index.tz_localize(None)).empty
    business_days = pd.bdate_range(frame.index[0].date(), frame.index[-1].date())
    assert len(holidays) == len(business_days) - len(frame)
    assert len(breaks) == 2
    assert rangebreaks(fig, "xaxis2") == breaks  # the volume row's axis too


def test_intraday_equity_breaks_the_hours_outside_the_session_derived_from_the_data(gspc_1m):
    fig = candlestick(gspc_1m, ticker="^GSPC")

    assert fig.layout.title.text == "^GSPC 1m"
    breaks = rangebreaks(fig)
    assert {"bounds": ["sat", "mon"]} in breaks
    (session,) = [b for b in breaks if b.get("pattern") == "hour"]
    # First bar 09:30; the last bar of a day starts at 16:00 and ends a minute later.
    # A break starting at 16:00 would hide that bar (plotly's lower bound is inclusive).
    assert session["bounds"] == pytest.approx([16 + 1 / 60, 9.5])
    assert not any("values" in b for b in breaks)  # 2019-11-05..08 are consecutive trading days


def test_intraday_session_end_is_the_last_bar_start_plus_the_bar_width(gspc_1m):
    before_close = gspc_1m[gspc_1m.index.strftime("%H:%M") < "16:00"]
    hourly = before_close[before_close.index.minute == 30]  # 09:30, 10:30, ..., 15:30 starts

    fig = candlestick(hourly)

    assert fig.layout.title.text == "1h"
    (session,) = [b for b in rangebreaks(fig) if b.get("pattern") == "hour"]
    assert session["bounds"] == [16.5, 9.5]


def test_crypto_gets_no_rangebreaks(btc):
    last_3_months = btc.loc["2019-07-17":]
    assert (last_3_months.index.dayofweek >= 5).any()

    assert rangebreaks(candlestick(last_3_months)) == []
    weekdays_only = btc.loc["2019-10-14":"2019-10-16"]
    assert rangebreaks(candlestick(weekdays_only, ticker="BTC-USD")) == []
    assert rangebreaks(candlestick(weekdays_only)) != []  # no ticker, no weekend bar: looks like an exchange


def test_gaps_argument_overrides_the_data(spy, btc):
    assert rangebreaks(candlestick(spy.loc["2017"], gaps=False)) == []
    assert rangebreaks(candlestick(btc.loc["2019-09":], gaps=True))[0] == {"bounds": ["sat", "mon"]}


def test_weekly_bars_get_no_rangebreaks(spy):
    weekly = resample_bars(spy.loc["2017"], "1d", "1wk")
    fig = candlestick(weekly)

    assert fig.layout.title.text == "1wk"
    assert rangebreaks(fig) == []


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_the_bar_width_is_read_in_the_unit_of_the_index(spy, unit):
    frame = spy.loc["2015"]
    fig = candlestick(frame.set_axis(frame.index.as_unit(unit)), ticker="SPY")

    assert fig.layout.title.text == "SPY 1d"
    assert rangebreaks(fig) == rangebreaks(candlestick(frame, ticker="SPY"))  # no hours left out of daily bars


# ---------------------------------------------------------------------------
# compare


def test_compare_rebases_every_series_to_100_at_the_first_common_date():
    frames = {"SPY": sample("SPY").loc["2017"], "AAPL": sample("AAPL").loc["2017-03":], "GOOG": sample("GOOG")}
    fig = compare(frames)

    base = pd.Timestamp("2017-03-01")  # AAPL's first bar; SPY and GOOG have one that day
    assert [trace.name for trace in fig.data] == ["SPY", "AAPL", "GOOG"]
    assert fig.layout.yaxis.title.text == "Rebased to 100"
    assert "2017-03-01" in fig.layout.title.text
    for trace, (name, frame) in zip(fig.data, frames.items(), strict=True):
        x = x_values(trace)
        assert x[0] == base
        assert trace.y[0] == 100.0
        closes = frame["Close"].loc[frame.index.tz_localize(None) >= base].to_numpy()
        np.testing.assert_allclose(trace.y / trace.y[0], closes / closes[0], rtol=1e-12, err_msg=name)
        assert len(x) == len(closes)


def test_compare_aligns_daily_bars_of_different_timezones_by_local_date(spy, btc):
    # BTC-USD days are UTC midnights, SPY days New York midnights: no common instant, but common dates.
    frames = {"BTC-USD": btc.loc["2017-06-03":], "SPY": spy.loc["2017-06":]}
    assert frames["BTC-USD"].index.intersection(frames["SPY"].index).empty

    fig = compare(frames)

    btc_x, spy_x = x_values(fig.data[0]), x_values(fig.data[1])
    assert btc_x[0] == spy_x[0] == pd.Timestamp("2017-06-05")  # 06-03 is a Saturday
    assert (btc_x.dayofweek >= 5).any() and not (spy_x.dayofweek >= 5).any()
    assert btc_x[0] == btc_x[0].normalize() and spy_x[-1] == pd.Timestamp("2017-12-29")


def test_compare_aligns_intraday_bars_by_instant(gspc_1m):
    frames = {"NY": gspc_1m.loc["2019-11-06 10:00":], "UTC": gspc_1m.tz_convert("UTC")}
    fig = compare(frames)

    ny, utc = fig.data
    assert x_values(ny)[0] == x_values(utc)[0] == pd.Timestamp("2019-11-06 10:00")  # New York wall clock
    np.testing.assert_array_equal(ny.y, utc.y)


def test_compare_without_normalize_draws_the_column_as_it_is(spy):
    frames = {"SPY": spy.loc["2016"], "AAPL": sample("AAPL").loc["2017"]}
    fig = compare(frames, normalize=False, column="Volume")

    assert fig.layout.yaxis.title.text == "Volume"
    for trace, frame in zip(fig.data, frames.values(), strict=True):
        np.testing.assert_array_equal(trace.y, frame["Volume"].to_numpy(dtype="float64"))


def test_compare_raises_when_the_frames_share_no_date():
    with pytest.raises(ValueError, match="share no date"):
        compare({"INTC": sample("INTC"), "EWG": sample("EWG")})


def test_compare_rejects_empty_input_and_missing_columns(spy):
    with pytest.raises(ValueError, match="empty mapping"):
        compare({})
    with pytest.raises(ValueError, match=r"SPY.*empty"):
        compare({"SPY": spy.iloc[:0]})
    with pytest.raises(ValueError, match="Adj Close"):
        compare({"SPY": spy}, column="Adj Close")


# ---------------------------------------------------------------------------
# plotly is optional at import time


def test_module_imports_without_plotly_and_says_how_to_install_it():
    code = (
        "import sys\n"
        "sys.modules['plotly'] = None\n"
        "import pandas as pd\n"
        "from dataprovider.notebook import charts\n"
        "frame = pd.DataFrame({c: [1.0] for c in ('Open', 'High', 'Low', 'Close')},\n"
        "                     index=pd.DatetimeIndex(['2024-01-02']))\n"
        "try:\n"
        "    charts.candlestick(frame)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install plotly" in result.stdout


# ---------------------------------------------------------------------------
# rendering


def _chromium() -> str | None:
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return None
    return Chromium.find_browser(skip_local=False)


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (still filtered) scanlines of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type = header
    assert depth == 8 and colour_type in (2, 6)
    return width, height, zlib.decompress(idat)


@pytest.mark.skipif(_chromium() is None, reason="no Chrome/Chromium found for kaleido (set BROWSER_PATH)")
def test_renders_a_png_with_kaleido(spy):
    kaleido = pytest.importorskip("kaleido")
    fig = candlestick(spy.loc["2017-07":], moving_averages=(20, 50), ticker="SPY")

    # mathjax=False: the page would otherwise load MathJax from a CDN.
    data = kaleido.calc_fig_sync(fig, opts={"format": "png", "width": 800, "height": 500}, kopts={"mathjax": False})

    width, height, raw = png_pixels(data)
    assert (width, height) == (800, 500)
    channels = (len(raw) // height - 1) // width
    assert len(raw) == height * (1 + width * channels)
    assert len(set(raw)) > 50  # not a blank page
