"""A full or failing disk, and damaged cache files, met by a running server.

Disk faults come from :class:`tests.support.faulty_store.FaultyStore` (the real store
code, with the OS failing part-way through a write); damage is done to the data files
of a live server's cache tables, as a crash, a bad disk or a stray editor would.
"""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from dataprovider.engine.store import DeltaStore
from tests.conftest import Now
from tests.support.faulty_store import FaultyStore
from tests.support.frames import assert_same_frame
from tests.support.yahoo_replay import YahooReplay

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
MSFT = "nyf2_historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def tables_in(folder: Path) -> list[str]:
    """The names of the Delta tables under ``folder``, sorted."""
    return sorted(p.name for p in folder.iterdir() if (p / "_delta_log").is_dir()) if folder.exists() else []


def data_file(table: Path) -> Path:
    """The newest data file of a table the cache wrote in one piece."""
    return max(table.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)


def truncate(path: Path) -> None:
    """Cut a file in half, as a crash of a non-atomic writer would leave it (the footer is lost)."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_page_bytes(path: Path) -> None:
    """Invert bytes in the middle of the Close column's data: the footer still reads, the page checksum fails."""
    column = pq.ParquetFile(path).metadata.row_group(0).column(3)
    assert column.path_in_schema == "Close"
    start = column.dictionary_page_offset or column.data_page_offset
    middle = start + column.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


class Outcome:
    """Collects what a client call delivered: the summary on success, the error payload on failure."""

    def __init__(self) -> None:
        self.info: dict | None = None
        self.error: dict | None = None

    def ok(self, info: dict) -> None:
        self.info = info

    def failed(self, error: dict) -> None:
        self.error = error


def ask(provider, ticker: str, **kwargs) -> tuple[pd.DataFrame | None, Outcome]:
    outcome = Outcome()
    frame = provider.get_data_socket(ticker, callback=outcome.ok, error_callback=outcome.failed, **kwargs)
    return frame, outcome


@pytest.mark.parametrize("failure", [errno.ENOSPC, errno.EIO], ids=["disk-full", "io-error"])
def test_a_failing_disk_is_storage_full_and_the_cached_data_is_still_served(live_server, make_yahoo_source, failure):
    replay = YahooReplay(NVDA, MSFT)
    now = Now(utc("2021-07-01 22:00"))
    replay.as_of(now.value)
    server = live_server(make_yahoo_source(replay, now), samples=False, clock=now, store_class=FaultyStore)
    provider = server.client(timeout=10)
    before, _ = ask(provider, "NVDA", period="3mo", local_only=False)
    folder = server.store.root / "1d"
    assert tables_in(folder) == ["NVDA"] and server.store.writes == 1

    now.value = utc("2021-07-16 22:00")  # two weeks on: NVDA is behind, MSFT was never fetched
    replay.as_of(now.value)
    server.store.failure = failure
    stale, outcome = ask(provider, "NVDA", period="3mo", local_only=False)
    assert outcome.info["stale"] and outcome.info["warnings"][0].startswith("STORAGE_FULL")
    assert_same_frame(stale, before)  # the old bars, marked stale
    missing, outcome = ask(provider, "MSFT", period="3mo", local_only=False)
    assert missing is None and outcome.error["code"] == "STORAGE_FULL"
    assert os.strerror(failure) in outcome.error["message"]
    assert tables_in(folder) == ["NVDA"]  # no MSFT table: its half-written file is in no commit
    assert_same_frame(server.store.read("NVDA", "1d").iloc[-len(before) :], before)
    assert server.store.writes == 1 and not (server.store.root / ".quarantine").exists()

    server.store.failure = None  # space freed: the next requests download and write again
    fresh, outcome = ask(provider, "NVDA", period="3mo", local_only=False)
    assert not outcome.info["stale"] and fresh.index[-1] == pd.Timestamp("2021-07-16", tz="America/New_York")
    msft, _ = ask(provider, "MSFT", period="3mo", local_only=False)
    assert msft is not None and tables_in(folder) == ["MSFT", "NVDA"]
    assert server.store.writes == 3


@pytest.mark.parametrize("damage", [truncate, flip_page_bytes], ids=["truncated", "flipped-bytes"])
def test_a_damaged_file_is_set_aside_and_reported_when_local_only(live_server, damage):
    server = live_server()
    path = server.store.root / "1d" / "SPY"
    damage(data_file(path))
    provider = server.client(timeout=10)
    frame, outcome = ask(provider, "SPY", local_only=True)
    assert frame is None and outcome.error["code"] == "CACHE_CORRUPT"
    assert "set aside" in outcome.error["message"]
    assert not path.exists()
    (quarantined,) = (server.store.root / ".quarantine" / "1d").iterdir()
    assert quarantined.name.startswith("SPY.") and Path(outcome.error["details"]["quarantined_as"]) == quarantined
    _, outcome = ask(provider, "SPY", local_only=True)  # never served later either
    assert outcome.error["code"] == "NOT_CACHED"
    assert "SPY" not in set(provider.get_instruments_local()["ticker"])
    assert len(provider.get_data_socket("AAPL", local_only=True, limit=5)) == 5  # the rest of the cache is fine


@pytest.mark.parametrize("damage", [truncate, flip_page_bytes], ids=["truncated", "flipped-bytes"])
def test_a_damaged_file_is_downloaded_afresh_when_the_source_has_it(live_server, make_yahoo_source, damage):
    replay = YahooReplay(NVDA)
    now = Now(utc("2022-02-01"))
    # No memory cache: every answer reads the table's files (a copy in memory would still be good).
    disk_only = functools.partial(DeltaStore, memory_cache_bytes=0)
    server = live_server(make_yahoo_source(replay, now), samples=False, clock=now, store_class=disk_only)
    provider = server.client(timeout=10)
    first, _ = ask(provider, "NVDA", period="6mo", local_only=False)  # downloaded and written
    path = server.store.root / "1d" / "NVDA"
    damage(data_file(path))

    again, outcome = ask(provider, "NVDA", period="6mo", local_only=False)
    assert outcome.error is None, outcome.error
    assert_same_frame(again, first)
    assert replay.fetch_count("NVDA") == 2  # downloaded again, not served from the damaged file
    assert len(list((server.store.root / ".quarantine" / "1d").iterdir())) == 1
    assert_same_frame(DeltaStore(server.store.root, memory_cache_bytes=0).read("NVDA", "1d").iloc[-len(first) :], first)
