"""The bundled sample dataset: manifest, canonical frames, synthetic series, coverage, rebuilds."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from dataprovider.frames import OHLCV_COLUMNS
from dataprovider.sources.sample import SampleEntry, load_sample, sample_entries

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "dataprovider" / "sample_data"
SOURCES = ROOT / "data" / "sample-sources"
ENTRIES = sample_entries()


def entry(ticker: str, resolution: str) -> SampleEntry:
    (found,) = [e for e in ENTRIES if e.ticker == ticker and e.resolution == resolution]
    return found


def daily_from_hourly(hourly: pd.DataFrame) -> pd.DataFrame:
    daily = hourly.groupby(hourly.index.floor("D")).agg(
        Open=("Open", "first"),
        High=("High", "max"),
        Low=("Low", "min"),
        Close=("Close", "last"),
        Volume=("Volume", "sum"),
    )
    return daily.rename_axis("Date")


def test_manifest_lists_exactly_the_shipped_parquet_files():
    assert sorted(e.file for e in ENTRIES) == sorted(p.name for p in SAMPLE_DIR.glob("*.parquet"))
    assert len({(e.ticker, e.resolution) for e in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("item", ENTRIES, ids=lambda e: f"{e.ticker}-{e.resolution.value}")
def test_each_dataset_is_canonical_and_matches_its_manifest_entry(item):
    frame = load_sample(item)

    assert (len(frame), frame.index[0], frame.index[-1]) == (item.rows, item.first, item.last)
    assert tuple(frame.columns) == OHLCV_COLUMNS
    assert str(frame.index.dtype) == f"datetime64[ns, {item.timezone}]"
    assert frame.index.name == item.resolution.index_name
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert [str(t) for t in frame.dtypes] == ["float64"] * 4 + ["int64"]
    assert not frame.isna().any().any()
    # Stored canonical already, not only after load_sample's normalisation.
    pd.testing.assert_frame_equal(pd.read_parquet(SAMPLE_DIR / item.file), frame)
    assert all((SOURCES / source).is_file() for source in item.sources)


def test_the_example_series_are_present():
    present = {(e.ticker, e.resolution.value) for e in ENTRIES}
    required = {(t, "1d") for t in ("BTC-USD", "ETH-USD", "SOL-USD", "SPY", "AAPL")}
    assert required | {("BTC-USD", "1h"), ("ETH-USD", "1h")} <= present


def test_synthetic_datasets_are_labelled_as_such():
    synthetic = {(e.ticker, e.resolution.value) for e in ENTRIES if e.is_synthetic}
    assert synthetic == {("ETH-USD", "1h"), ("SOL-USD", "1d")}
    assert {e.kind for e in ENTRIES} == {"real", "synthetic"}
    for item in ENTRIES:
        assert item.description.startswith("SYNTHETIC") == item.is_synthetic
    readme = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    assert "ETH-USD | 1h | 18864" in readme and "**synthetic**" in readme


def test_synthetic_eth_hours_aggregate_exactly_to_the_real_eth_days():
    hourly = load_sample(entry("ETH-USD", "1h"))
    daily = load_sample(entry("ETH-USD", "1d"))

    assert (hourly.groupby(hourly.index.floor("D")).size() == 24).all()
    pd.testing.assert_frame_equal(daily_from_hourly(hourly), daily, check_exact=True, check_freq=False)
    low, high = hourly["Low"], hourly["High"]
    assert (hourly["Open"].between(low, high) & hourly["Close"].between(low, high)).all()
    opens, closes = (hourly[col].to_numpy().reshape(-1, 24) for col in ("Open", "Close"))
    assert (opens[:, 1:] == closes[:, :-1]).all()


def test_synthetic_sol_has_the_volatility_of_real_eth():
    sol = load_sample(entry("SOL-USD", "1d"))
    eth = load_sample(entry("ETH-USD", "1d"))

    assert (sol.index[0], sol.index[-1]) == (eth.index[0], eth.index[-1])
    assert (sol.index.to_series().diff().dropna() == pd.Timedelta(days=1)).all()
    sol_vol = sol["Close"].pct_change().std()
    eth_vol = eth["Close"].pct_change()[eth.index.to_series().diff() == pd.Timedelta(days=1)].std()
    assert 0.8 < sol_vol / eth_vol < 1.2
    assert (
        (sol["Low"] <= sol[["Open", "Close"]].min(axis=1)) & (sol["High"] >= sol[["Open", "Close"]].max(axis=1))
    ).all()


def test_btc_daily_hole_is_filled_from_the_hourly_bars():
    daily = load_sample(entry("BTC-USD", "1d"))
    hourly = load_sample(entry("BTC-USD", "1h"))

    assert (daily.index.to_series().diff().dropna() == pd.Timedelta(days=1)).all()
    hole = daily.loc["2019-03-19":"2019-03-31"]
    assert len(hole) == 13
    pd.testing.assert_frame_equal(
        daily_from_hourly(hourly.loc["2019-03-19":"2019-03-31"]),
        hole,
        check_exact=True,
        check_freq=False,
    )
    assert hourly.index[-1] == daily.index[-1] + pd.Timedelta(hours=23)


def test_the_example_windows_are_covered():
    def last_year(ticker: str) -> pd.DataFrame:
        frame = load_sample(entry(ticker, "1d"))
        return frame[frame.index > frame.index[-1] - pd.DateOffset(years=1)]

    assert len(last_year("BTC-USD")) == 365
    for ticker in ("BTC-USD", "ETH-USD", "SPY", "AAPL"):
        assert len(last_year(ticker)) >= 240, ticker
    eth_hours = load_sample(entry("ETH-USD", "1h"))
    assert len(eth_hours[eth_hours.index > eth_hours.index[-1] - pd.DateOffset(months=1)]) >= 100
    assert len(load_sample(entry("SPY", "1d")).loc["2015-01-01":"2015-12-31"]) == 252


def test_shipped_files_equal_a_fresh_build(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("build_sample_data", ROOT / "scripts" / "build_sample_data.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)

    manifest = module.build(SOURCES, tmp_path)

    assert manifest == json.loads((SAMPLE_DIR / "manifest.json").read_text(encoding="utf-8"))
    assert (tmp_path / "manifest.json").read_bytes() == (SAMPLE_DIR / "manifest.json").read_bytes()
    for item in manifest["datasets"]:
        fresh = pd.read_parquet(tmp_path / item["file"])
        pd.testing.assert_frame_equal(fresh, pd.read_parquet(SAMPLE_DIR / item["file"]), check_exact=True)


def test_raw_sources_match_the_checksums_in_their_readme():
    readme = (SOURCES / "README.md").read_text(encoding="utf-8")
    listed = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M))
    present = {p.name for p in SOURCES.iterdir() if p.is_file() and p.name not in ("README.md", ".gitattributes")}
    assert set(listed) == present
    for name, digest in listed.items():
        assert hashlib.sha256((SOURCES / name).read_bytes()).hexdigest() == digest, name


def test_licences_and_notices_ship_with_the_data():
    readme = (SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    notice = "Copyright (c) 2012- Matplotlib Development Team; All Rights Reserved"
    assert notice in readme
    assert "2012- Matplotlib Development Team" in (SAMPLE_DIR / "LICENSES" / "mplfinance-LICENSE.txt").read_text()
    assert "Apache License" in (SAMPLE_DIR / "LICENSES" / "Apache-2.0.txt").read_text()
    assert {e.licence for e in ENTRIES} <= {"Apache-2.0", "LicenseRef-mplfinance", "MIT"}


def test_sample_is_small():
    assert sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file()) < 3_000_000
