"""Reading bar files: every layout in data/sample-sources/, variants written to tmp, and bad files.

The facts asserted about the real files (row counts, first/last bars, holes,
adjustment ratios) are documented in data/sample-sources/README.md.
"""

from __future__ import annotations

import gzip
import io
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataprovider.errors import InvalidRequestError
from dataprovider.frames import OHLCV_COLUMNS
from dataprovider.sources.files import read_bars_bytes, read_bars_file

SOURCES = Path(__file__).resolve().parents[2] / "data" / "sample-sources"
NY = "America/New_York"


def read(name: str, ticker: str, resolution: str, **kwargs) -> pd.DataFrame:
    frame, _ = read_bars_file(SOURCES / name, ticker=ticker, resolution=resolution, **kwargs)
    return frame


def raw(name: str, **kwargs) -> pd.DataFrame:
    """The file as plain pandas reads it, floats parsed exactly."""
    return pd.read_csv(SOURCES / name, float_precision="round_trip", **kwargs)


def ts(text: str, tz: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=tz)


def assert_canonical(frame: pd.DataFrame, tz: str, index_name: str) -> None:
    assert tuple(frame.columns) == OHLCV_COLUMNS
    assert str(frame.index.dtype) == f"datetime64[ns, {tz}]"
    assert frame.index.name == index_name
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert [str(t) for t in frame.dtypes] == ["float64"] * 4 + ["int64"]


# --- the real layouts ---------------------------------------------------------------------------


def test_yahoo_download_csv_is_adjusted_by_adj_close():
    name = "SPY_1d_2007-12-31_2017-12-29.csv"
    frame, tz = read_bars_file(SOURCES / name, ticker="SPY", resolution="1d")
    source = raw(name)

    assert tz == NY
    assert_canonical(frame, NY, "Date")
    assert len(frame) == 2519
    assert (frame.index[0], frame.index[-1]) == (ts("2007-12-31", NY), ts("2017-12-29", NY))
    ratio = frame["Close"].to_numpy() / source["Close"].to_numpy()
    assert round(ratio[0], 4) == 0.8113 and ratio[-1] == 1.0
    np.testing.assert_allclose(frame["Close"], source["Adj Close"], rtol=1e-12)
    for col in ("Open", "High", "Low"):
        np.testing.assert_allclose(frame[col], source[col] * ratio, rtol=1e-12)
    np.testing.assert_array_equal(frame["Volume"], source["Volume"])


def test_rows_breaking_ohlc_consistency_are_kept_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="dataprovider.sources.files"):
        frame = read("SPY_1d_2007-12-31_2017-12-29.csv", "SPY", "1d")

    (record,) = [r for r in caplog.records if "outside [Low, High]" in r.getMessage()]
    assert "2 rows" in record.getMessage() and "2015-03-05" in record.getMessage()
    bad = frame.loc[[ts("2015-03-05", NY), ts("2015-03-30", NY)]]
    assert (bad["Open"] < bad["Low"]).all()


def test_cryptodatadownload_daily_banner_newest_first_crlf():
    frame = read("BTCUSD_1d_2014-12-01_2019-10-17.csv", "BTC-USD", "1d")

    assert_canonical(frame, "UTC", "Date")
    assert len(frame) == 1770
    assert (frame.index[0], frame.index[-1]) == (ts("2014-12-01", "UTC"), ts("2019-10-17", "UTC"))
    steps = frame.index.to_series().diff()
    assert steps.max() == pd.Timedelta(days=13)
    assert steps.idxmax() == ts("2019-04-01", "UTC")
    # 'volume' (USD) is the Volume; 'volume_btc' is not: the partial last day has 1570.08 BTC.
    assert frame["Volume"].iloc[-1] == 12537246


def test_cryptodatadownload_hourly_am_pm_times_are_sorted_into_a_complete_series():
    frame = read("BTCUSD_1h_2017-07-01_2019-10-17.csv", "BTC-USD", "1h")

    assert_canonical(frame, "UTC", "Datetime")
    assert len(frame) == 20111
    assert frame.index[0] == ts("2017-07-01 11:00", "UTC")
    assert frame.index[-1] == ts("2019-10-17 09:00", "UTC")
    assert (frame.index.to_series().diff().dropna() == pd.Timedelta(hours=1)).all()
    block = frame.loc["2017-11-11 22:00":"2017-11-12 09:00"]
    assert len(block) == 12 and block.index.is_monotonic_increasing


def test_unnamed_index_column_lower_case_names_and_float_volume():
    frame = read("SPY_1d_1999-11-01_2020-08-28.csv", "SPY", "1d")

    assert_canonical(frame, NY, "Date")
    assert len(frame) == 5241
    assert (frame.index[0], frame.index[-1]) == (ts("1999-11-01", NY), ts("2020-08-28", NY))
    first = frame.iloc[0]
    assert (first["Open"], first["Close"], first["Volume"]) == (136.5, 135.5625, 4006500)
    assert frame["Close"].iloc[-1] == 350.58  # no Adj Close: prices as written


def test_month_first_dates_with_crlf():
    frame = read("SPX_1d_2019-11-01_2019-11-29.csv", "^GSPC", "1d")

    assert len(frame) == 20
    assert (frame.index[0], frame.index[-1]) == (ts("2019-11-01", NY), ts("2019-11-29", NY))
    assert frame["Volume"].iloc[0] == 510301237


def test_minutes_with_month_first_times_and_columns_out_of_order():
    frame = read("SPX_1m_2019-11-05_2019-11-08.csv", "^GSPC", "1m")

    assert_canonical(frame, NY, "Datetime")
    assert len(frame) == 1563
    assert frame.index[0] == ts("2019-11-05 09:30", NY) == pd.Timestamp("2019-11-05 14:30", tz="UTC")
    assert frame.index[-1] == ts("2019-11-08 15:59", NY)
    assert frame.groupby(frame.index.date).size().tolist() == [391, 391, 391, 390]
    # The file's order is Date,Open,Close,High,Low,Volume.
    assert frame.iloc[0][["Open", "High", "Low", "Close"]].tolist() == [
        3080.8,
        3081.47,
        3080.3,
        3080.49,
    ]
    assert (frame["Volume"] == 0).all()


@pytest.mark.parametrize(
    ("name", "ticker", "first_ratio"),
    [
        ("EWG_1d_2022-01-03_2024-08-21.csv", "EWG", 0.922),
        ("CALM_1d_2022-01-03_2024-08-21.csv", "CALM", 0.866),
    ],
)
def test_yfinance_to_csv_with_mixed_offsets(name, ticker, first_ratio):
    frame = read(name, ticker, "1d")
    source = raw(name)

    assert_canonical(frame, NY, "Date")
    assert len(frame) == 662
    assert (frame.index[0], frame.index[-1]) == (ts("2022-01-03", NY), ts("2024-08-21", NY))
    assert (frame.index == frame.index.normalize()).all()
    offsets = pd.Series(frame.index.map(lambda t: t.utcoffset())).value_counts()
    assert offsets.to_dict() == {pd.Timedelta(hours=-4): 444, pd.Timedelta(hours=-5): 218}
    ratio = frame["Close"].to_numpy() / source["Close"].to_numpy()
    assert round(ratio[0], 3) == first_ratio and round(ratio[-1], 12) == 1.0


def test_gzip_csv_matches_the_unadjusted_yahoo_file():
    frame = read("AAPL_1d_2012-01-03_2014-12-31.csv.gz", "AAPL", "1d")
    yahoo = raw("AAPL_1d_2004-08-19_2018-01-19.csv", index_col="Date")

    assert len(frame) == 754
    assert (frame.index[0], frame.index[-1]) == (ts("2012-01-03", NY), ts("2014-12-31", NY))
    same_days = yahoo.loc[frame.index.strftime("%Y-%m-%d")]
    np.testing.assert_array_equal(frame["Close"], same_days["Close"])
    np.testing.assert_array_equal(frame["Volume"], same_days["Volume"])


def test_wide_file_picks_the_instrument_from_the_ticker_or_prefix():
    name = "BTC-ETH-LTC-USD_1d_2014-11-28_2020-01-17.csv"
    eth = read(name, "ETH-USD", "1d")
    ltc = read(name, "LTC-USD", "1d", prefix="ltc")
    btc = read(name, "BTC-USD", "1d")

    assert_canonical(eth, "UTC", "Date")
    assert (len(eth), eth.index[0]) == (788, ts("2017-11-09", "UTC"))
    assert ltc.index[0] == ts("2017-06-25", "UTC")
    assert (len(btc), btc.index[0], btc.index[-1]) == (
        1865,
        ts("2014-11-28", "UTC"),
        ts("2020-01-17", "UTC"),
    )
    last = raw(name).iloc[-1]
    assert eth["Close"].iloc[-1] == last["ETH:close"] and btc["Close"].iloc[-1] == last["BTC:close"]


def test_wide_file_without_a_matching_instrument_is_refused():
    with pytest.raises(InvalidRequestError) as info:
        read("BTC-ETH-LTC-USD_1d_2014-11-28_2020-01-17.csv", "XRP-USD", "1d")
    assert info.value.code == "INVALID_FILE"
    assert "BTC, ETH, LTC" in info.value.message and "prefix" in info.value.message

    with pytest.raises(InvalidRequestError, match="its prefixes are BTC, ETH, LTC"):
        read("BTC-ETH-LTC-USD_1d_2014-11-28_2020-01-17.csv", "ETH-USD", "1d", prefix="XRP")
    with pytest.raises(InvalidRequestError, match="prefix is only for wide files"):
        read("SPX_1d_2019-11-01_2019-11-29.csv", "^GSPC", "1d", prefix="SPX")


# --- variants written to tmp --------------------------------------------------------------------


@pytest.fixture(scope="module")
def spx_daily() -> pd.DataFrame:
    return read("SPX_1d_2019-11-01_2019-11-29.csv", "^GSPC", "1d")


@pytest.fixture(scope="module")
def spx_minutes() -> pd.DataFrame:
    return read("SPX_1m_2019-11-05_2019-11-08.csv", "^GSPC", "1m")


def test_parquet_with_a_datetime_index(tmp_path, spx_daily):
    spx_daily.to_parquet(tmp_path / "bars.parquet")
    frame, _ = read_bars_file(tmp_path / "bars.parquet", ticker="^GSPC", resolution="1d")
    pd.testing.assert_frame_equal(frame, spx_daily)


@pytest.mark.parametrize("column", ["date", "datetime", "timestamp"])
def test_parquet_with_a_naive_time_column_in_the_given_timezone(tmp_path, spx_minutes, column):
    table = spx_minutes.reset_index(drop=True)
    table.insert(0, column, spx_minutes.index.tz_localize(None))
    table.columns = [c.lower() for c in table.columns]
    table.to_parquet(tmp_path / "bars.parquet", index=False)

    frame, tz = read_bars_file(tmp_path / "bars.parquet", ticker="^GSPC", resolution="1m", timezone="UTC")
    assert tz == "UTC"
    assert frame.index[0] == pd.Timestamp("2019-11-05 09:30", tz="UTC")
    np.testing.assert_array_equal(frame["Close"], spx_minutes["Close"])


def test_parquet_with_tz_aware_times_and_date_objects(tmp_path, spx_minutes, spx_daily):
    aware = spx_minutes.tz_convert("UTC").reset_index()
    aware.to_parquet(tmp_path / "aware.parquet", index=False)
    frame, _ = read_bars_file(tmp_path / "aware.parquet", ticker="SPY", resolution="1m")
    pd.testing.assert_frame_equal(frame, spx_minutes)

    dates = spx_daily.reset_index(drop=True).assign(Date=spx_daily.index.date)
    dates.to_parquet(tmp_path / "dates.parquet", index=False)
    frame, _ = read_bars_file(tmp_path / "dates.parquet", ticker="^GSPC", resolution="1d")
    pd.testing.assert_frame_equal(frame, spx_daily)


def test_tz_aware_csv_times_are_converted_and_naive_ones_taken_in_timezone(spx_minutes):
    text = spx_minutes.tz_convert("UTC").to_csv(date_format="%Y-%m-%dT%H:%M:%S%z")
    frame, tz = read_bars_bytes(text.encode(), ticker="SPY", resolution="1m")
    assert tz == NY
    pd.testing.assert_frame_equal(frame, spx_minutes)

    in_utc = read("SPX_1m_2019-11-05_2019-11-08.csv", "^GSPC", "1m", timezone="UTC")
    assert in_utc.index[0] == pd.Timestamp("2019-11-05 09:30", tz="UTC")


def test_daily_bars_keep_their_session_date_in_another_timezone():
    frame = read("EWG_1d_2022-01-03_2024-08-21.csv", "EWG", "1d", timezone="UTC")
    assert frame.index[0] == pd.Timestamp("2022-01-03", tz="UTC")
    assert frame.index[-1] == pd.Timestamp("2024-08-21", tz="UTC")


def test_missing_volume_reads_as_zero(spx_daily):
    text = spx_daily.drop(columns="Volume").to_csv(date_format="%Y-%m-%d")
    frame, _ = read_bars_bytes(text.encode(), ticker="^GSPC", resolution="1d")
    assert frame["Volume"].dtype == "int64" and (frame["Volume"] == 0).all()
    pd.testing.assert_frame_equal(frame.drop(columns="Volume"), spx_daily.drop(columns="Volume"))


def test_semicolon_separated_csv_with_byte_order_mark(spx_daily):
    text = spx_daily.to_csv(sep=";", date_format="%Y-%m-%d")
    frame, _ = read_bars_bytes(b"\xef\xbb\xbf" + text.encode(), ticker="^GSPC", resolution="1d")
    pd.testing.assert_frame_equal(frame, spx_daily)


def test_gzip_is_told_by_content_not_by_name(tmp_path, spx_daily):
    (tmp_path / "bars.txt").write_bytes(gzip.compress(spx_daily.to_csv().encode(), mtime=0))
    frame, _ = read_bars_file(tmp_path / "bars.txt", ticker="^GSPC", resolution="1d")
    pd.testing.assert_frame_equal(frame, spx_daily)


def test_repeated_times_keep_the_last_row_and_are_logged(caplog):
    text = b"Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1.5\n2020-01-03,1,2,0.5,1.5\n2020-01-02,1,2,0.5,1.75\n"
    with caplog.at_level(logging.WARNING, logger="dataprovider.sources.files"):
        frame, _ = read_bars_bytes(text, ticker="SPY", resolution="1d")
    assert frame["Close"].tolist() == [1.75, 1.5]
    assert any("repeat an earlier time" in r.getMessage() for r in caplog.records)


# --- files that cannot be read ------------------------------------------------------------------


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


BAD_FILES = {
    "empty": (b"", "is empty"),
    "blank lines": (b"\r\n\r\n", "is empty"),
    "header only": (b"Date,Open,High,Low,Close,Volume\n", "has a header but no data rows"),
    "no close column": (
        b"Date,Open,High,Low\n2020-01-02,1,2,0.5\n",
        "no header row naming a Close column",
    ),
    "no high column": (b"Date,Open,Low,Close\n2020-01-02,1,0.5,1.5\n", "has no High column"),
    "no time column": (b"Open,High,Low,Close\n1,2,0.5,1.5\n", "has no date/time column"),
    "bad date": (
        b"Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1.5\nyesterday,1,2,0.5,1.5\n",
        "'yesterday' in data row 2",
    ),
    "one date in another format": (
        b"Date,Open,High,Low,Close\n11/1/2019,1,2,0.5,1.5\n11/4/2019,1,2,0.5,1.5\n2019-11-05,1,2,0.5,1.5\n",
        "'2019-11-05' in data row 3",
    ),
    "missing date": (
        b"Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1.5\n,1,2,0.5,1.5\n",
        "data row 2",
    ),
    "bad number": (
        b'Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,"1,234.5"\n',
        "'1,234.5' in data row 1",
    ),
    "mixed offsets and naive": (
        b"Datetime,Open,High,Low,Close\n2020-01-02 10:00:00-05:00,1,2,0.5,1.5\n2020-01-02 11:00:00,1,2,0.5,1.5\n",
        "mixes times with a UTC offset",
    ),
    "ragged csv": (
        b"Date,Open,High,Low,Close\n2020-01-02,1,2,0.5,1.5,9,9\n",
        "not a well-formed CSV",
    ),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is a binary file"),
    "pickle": (pickle.dumps(pd.DataFrame({"Close": [1.0]})), "expected a CSV"),
    "excel": (_zip_bytes(), "Excel workbook"),
    "damaged gzip": (b"\x1f\x8b\x08\x00garbage", "damaged gzip"),
    "damaged parquet": (b"PAR1 not really parquet PAR1", "not a readable Parquet file"),
    "nonexistent local time": (
        b"Datetime,Open,High,Low,Close\n2019-03-10 01:00,1,2,0.5,1.5\n2019-03-10 02:30,1,2,0.5,1.5\n",
        "does not exist or is ambiguous in America/New_York",
    ),
}


@pytest.mark.parametrize(("data", "fragment"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_unreadable_files_say_what_is_wrong(data, fragment):
    with pytest.raises(InvalidRequestError) as info:
        read_bars_bytes(data, ticker="SPY", resolution="1h", name="upload.csv")
    error = info.value
    assert (error.code, error.field) == ("INVALID_FILE", "file")
    assert error.message.startswith("upload.csv ")
    assert fragment in error.message


def test_layout_errors_describe_the_expected_layout():
    with pytest.raises(InvalidRequestError, match="Date,Open,High,Low,Close,Adj Close,Volume"):
        read_bars_bytes(b"Date,Open,Low,Close\n2020-01-02,1,0.5,1.5\n", ticker="SPY", resolution="1d")


def test_parquet_with_numbers_for_dates_is_refused(tmp_path):
    table = pd.DataFrame({"date": [20191101], "open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5]})
    table.to_parquet(tmp_path / "bars.parquet")
    with pytest.raises(InvalidRequestError, match="has numbers in its date/time column"):
        read_bars_file(tmp_path / "bars.parquet", ticker="SPY", resolution="1d")


def test_a_finer_file_than_the_resolution_is_refused():
    with pytest.raises(InvalidRequestError, match="finer than the resolution '1d'"):
        read("SPX_1m_2019-11-05_2019-11-08.csv", "^GSPC", "1d")


def test_missing_path(tmp_path):
    with pytest.raises(InvalidRequestError, match="does not exist") as info:
        read_bars_file(tmp_path / "nope.csv", ticker="SPY", resolution="1d")
    assert info.value.code == "INVALID_FILE"


def test_bad_arguments_name_their_field(spx_daily):
    data = spx_daily.to_csv().encode()
    with pytest.raises(InvalidRequestError) as info:
        read_bars_bytes(data, ticker="SPY", resolution="1d", timezone="Mars/Olympus")
    assert (info.value.code, info.value.field) == ("INVALID_PAYLOAD", "timezone")
    with pytest.raises(InvalidRequestError) as info:
        read_bars_bytes(data, ticker="SPY", resolution="3d")
    assert info.value.code == "INVALID_RESOLUTION"
    with pytest.raises(InvalidRequestError) as info:
        read_bars_bytes(data, ticker="../etc", resolution="1d")
    assert info.value.code == "INVALID_TICKER"
