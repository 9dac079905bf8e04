"""The Delta Lake cache: commits (whole, appended, replaced ranges), locks, damage handling, memory, safe paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from dataprovider.engine.datasets import DatasetMeta
from dataprovider.engine.memory_cache import MemoryCache
from dataprovider.engine.store import DeltaStore, latest_version
from dataprovider.enums import DataResolution
from dataprovider.errors import CacheCorruptError, InvalidRequestError, ServerBusyError
from dataprovider.frames import normalize_frame
from tests.support.clock import FakeClock

R1M, R1D = DataResolution.MINUTE_01, DataResolution.DAY_01


def minute_bars(rows: int, start: str = "2020-01-01", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=rows, freq="min", tz="UTC")
    close = 100 + rng.standard_normal(rows).cumsum()
    frame = pd.DataFrame(
        {"Open": close, "High": close + 1, "Low": close - 1, "Close": close, "Volume": rng.integers(0, 1000, rows)},
        index=index,
    )
    return normalize_frame(frame, R1M, "UTC")


def test_write_then_read_round_trips_frame_and_meta(tmp_path):
    store = DeltaStore(tmp_path)
    frame = minute_bars(1000)
    meta = DatasetMeta("UTC", "test", coverage_start=frame.index[0], history_complete=True)
    info = store.write("BTC-USD", R1M, frame, meta)
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), frame)
    assert (info.rows, info.first, info.last) == (1000, frame.index[0], frame.index[-1])
    assert store.info("BTC-USD", R1M).meta == meta
    assert info.path == tmp_path / "1m" / "BTC-USD" and (info.path / "_delta_log").is_dir()
    assert info.version == 0


def test_missing_dataset_is_none(tmp_path):
    store = DeltaStore(tmp_path)
    assert store.info("SPY", R1D) is None
    assert store.read("SPY", R1D) is None
    assert store.list_datasets() == []


def data_files(path) -> list:
    return sorted(p for p in path.iterdir() if p.suffix == ".parquet")


def test_an_append_commits_only_the_new_rows(tmp_path):
    store = DeltaStore(tmp_path)
    frame = minute_bars(10_001)
    store.write("ETH-USD", R1M, frame.iloc[:10_000], DatasetMeta("UTC", "test"))
    before = set(data_files(tmp_path / "1m" / "ETH-USD"))
    info = store.append("ETH-USD", R1M, frame.iloc[10_000:], DatasetMeta("UTC", "test", history_complete=True))
    added = set(data_files(info.path)) - before
    assert info.version == 1 and info.rows == 10_001 and info.last == frame.index[-1] and info.meta.history_complete
    assert len(added) == 1 and pq.ParquetFile(added.pop()).metadata.num_rows == 1
    pd.testing.assert_frame_equal(DeltaStore(tmp_path).read("ETH-USD", R1M), frame)  # a fresh store: from disk
    with pytest.raises(ValueError, match="newer"):
        store.append("ETH-USD", R1M, frame.iloc[-1:], DatasetMeta("UTC", "test"))


def test_a_replaced_range_is_one_commit_and_the_old_version_stays_readable(tmp_path):
    store = DeltaStore(tmp_path)
    old = minute_bars(1000, seed=1)
    store.write("ETH-USD", R1M, old, DatasetMeta("UTC", "test"))
    written = pd.Timestamp.now("UTC")
    revised = minute_bars(1000, seed=2).iloc[600:]  # same times, other prices
    info = store.replace_from("ETH-USD", R1M, revised.index[0], revised, DatasetMeta("UTC", "test"))
    assert info.version == 1 and info.rows == 1000
    pd.testing.assert_frame_equal(store.read("ETH-USD", R1M), pd.concat([old.iloc[:600], revised]))
    pd.testing.assert_frame_equal(store.bars_as_of(info, written).to_frame(), old)
    with pytest.raises(ValueError, match="older"):
        store.replace_from("ETH-USD", R1M, revised.index[1], revised, DatasetMeta("UTC", "test"))


def test_compaction_keeps_every_bar_and_the_bookkeeping(tmp_path):
    store = DeltaStore(tmp_path, max_files=4)
    frame = minute_bars(40)
    store.write("ETH-USD", R1M, frame.iloc[:4], DatasetMeta("UTC", "test"))
    for start in range(4, 40, 4):
        info = store.append("ETH-USD", R1M, frame.iloc[start : start + 4], DatasetMeta("UTC", str(start)))
    again = DeltaStore(tmp_path)
    pd.testing.assert_frame_equal(again.read("ETH-USD", R1M), frame)
    assert again.info("ETH-USD", R1M).meta.source == "36" and again.info("ETH-USD", R1M).rows == 40
    assert len(DeltaTable(str(info.path)).file_uris()) <= 4


def test_other_tools_read_a_cache_table_directly(tmp_path):
    frame = minute_bars(100)
    info = DeltaStore(tmp_path).write("BTC-USD", R1M, frame, DatasetMeta("UTC", "test"))
    theirs = DeltaTable(str(info.path)).to_pandas().set_index("Datetime").sort_index()
    assert theirs.index.equals(frame.index.as_unit("us"))
    assert theirs[["Open", "High", "Low", "Close", "Volume"]].to_numpy().tolist() == frame.to_numpy().tolist()


def test_corrupt_file_is_set_aside_and_never_served(tmp_path):
    store = DeltaStore(tmp_path)
    info = store.write("SPY", R1D, minute_bars(10).tz_convert("UTC"), DatasetMeta("UTC", "test"))
    store.memory.forget(("SPY", "1d"))
    (file,) = data_files(info.path)
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])  # torn
    with pytest.raises(CacheCorruptError) as caught:
        store.read("SPY", R1D)
    assert caught.value.code == "CACHE_CORRUPT"
    assert not info.path.exists()
    assert store.info("SPY", R1D) is None
    quarantined = list((tmp_path / ".quarantine" / "1d").iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.startswith("SPY.")


def test_readers_never_see_a_torn_file_while_writers_replace_it(tmp_path):
    store = DeltaStore(tmp_path)
    versions = [minute_bars(20_000, seed=s) for s in range(2)]
    store.write("BTC-USD", R1M, versions[0], DatasetMeta("UTC", "test"))
    stop = threading.Event()
    problems: list[str] = []

    def reader():
        while not stop.is_set():
            frame = store.read("BTC-USD", R1M)
            if not any(frame.equals(v) for v in versions):
                problems.append("read a frame that is neither version")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(20):
        store.write("BTC-USD", R1M, versions[i % 2], DatasetMeta("UTC", "test"))
        store.memory.forget(("BTC-USD", "1m"))  # readers go to the disk too
    stop.set()
    for t in threads:
        t.join()
    assert problems == []


def test_failed_write_keeps_the_old_version(tmp_path):
    """A write that hits a file-size limit (EFBIG, like a full disk) raises STORAGE_FULL and changes nothing."""
    store = DeltaStore(tmp_path)
    old = minute_bars(100)
    store.write("BTC-USD", R1M, old, DatasetMeta("UTC", "test"))
    script = textwrap.dedent(
        f"""
        import resource, signal, json
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        from tests.unit.test_store import minute_bars
        from dataprovider.engine.datasets import DatasetMeta
        from dataprovider.engine.store import DeltaStore
        from dataprovider.enums import DataResolution
        from dataprovider.errors import StorageFullError
        store = DeltaStore({str(tmp_path)!r})
        try:
            store.write("BTC-USD", DataResolution.MINUTE_01, minute_bars(200_000), DatasetMeta("UTC", "test"))
            print(json.dumps("written"))
        except StorageFullError as exc:
            print(json.dumps(exc.code))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == "STORAGE_FULL"
    pd.testing.assert_frame_equal(DeltaStore(tmp_path).read("BTC-USD", R1M), old)
    assert latest_version(tmp_path / "1m" / "BTC-USD") == 0


def test_lock_is_exclusive_across_processes(tmp_path):
    store = DeltaStore(tmp_path, lock_timeout=0.2)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from dataprovider.engine.store import DeltaStore
                from dataprovider.enums import DataResolution
                with DeltaStore({str(tmp_path)!r}).lock("SPY", DataResolution.DAY_01):
                    print("held", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ServerBusyError), store.lock("SPY", R1D):
            pass
        with store.lock("AAPL", R1D):  # other datasets are not blocked
            pass
    finally:
        holder.communicate("go\n", timeout=10)
    with store.lock("SPY", R1D):  # released with the other process
        pass


@pytest.mark.parametrize("ticker", ["../etc", "a/b", "..", "/abs", "SP Y", "x\x00", "C:\\x", "ÄPL", "A" * 33])
def test_tickers_can_never_become_paths(tmp_path, ticker):
    store = DeltaStore(tmp_path)
    with pytest.raises(InvalidRequestError) as caught:
        store.path_for(ticker, R1D)
    assert caught.value.code == "INVALID_TICKER"


@pytest.mark.parametrize("ticker", ["^GSPC", "EURUSD=X", "BRK-B", "BTC-USD", "0700.HK", "ES=F"])
def test_yahoo_symbols_map_inside_the_data_dir(tmp_path, ticker):
    path = DeltaStore(tmp_path).path_for(ticker, R1D)
    assert path.parent == tmp_path.resolve() / "1d" and path.name == ticker.replace("^", "_")


def test_an_index_symbol_round_trips_through_its_table_name(tmp_path):
    store = DeltaStore(tmp_path)
    store.write("^GSPC", R1D, minute_bars(3).tz_convert("UTC"), DatasetMeta("UTC", "test"))
    assert [i.ticker for i in DeltaStore(tmp_path).list_datasets()] == ["^GSPC"]


def test_recent_datasets_are_served_from_memory_until_their_table_changes(tmp_path):
    clock = FakeClock()
    store = DeltaStore(tmp_path, cache=MemoryCache(64 * 2**20, recheck_seconds=0.25, clock=clock))
    first = minute_bars(1000, seed=1)
    info = store.write("BTC-USD", R1M, first, DatasetMeta("UTC", "test"))
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), first)
    assert store.memory.used_bytes > 0
    # Damaged data files: only a copy in memory can still answer.
    for file in data_files(info.path):
        file.write_bytes(b"\0" * file.stat().st_size)
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), first)
    # An append by this store extends the bars in memory (the damaged files are not read again).
    more = minute_bars(1001, seed=1).iloc[1000:]
    store.append("BTC-USD", R1M, more, DatasetMeta("UTC", "test"))
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), pd.concat([first, more]))
    # A new version committed by another process (another store on the same directory) is
    # noticed once the last look at the table is older than recheck_seconds.
    second = minute_bars(500, seed=2)
    DeltaStore(tmp_path).write("BTC-USD", R1M, second, DatasetMeta("UTC", "test"))
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), pd.concat([first, more]))
    clock.advance(0.3)
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), second)
    assert store.info("BTC-USD", R1M).rows == 500
    # One written by this store is seen at once.
    third = minute_bars(300, seed=3)
    store.write("BTC-USD", R1M, third, DatasetMeta("UTC", "test"))
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), third)


def test_memory_cache_stays_within_its_budget(tmp_path):
    frame = minute_bars(20_000)
    store = DeltaStore(tmp_path, memory_cache_bytes=int(4.5 * 20_000 * 48))  # room for four of the six
    for i in range(6):
        store.write(f"T{i}", R1M, frame, DatasetMeta("UTC", "test"))
        assert store.read(f"T{i}", R1M).equals(frame)
        assert store.memory.used_bytes <= store.memory.max_bytes
    assert store.memory.used_bytes > 0
