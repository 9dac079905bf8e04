"""The Parquet cache: atomic writes, locks, corruption handling, filtered reads, safe paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest

from dataprovider.engine.datasets import DatasetMeta
from dataprovider.engine.memory_cache import MemoryCache
from dataprovider.engine.store import ROW_GROUP_SIZE, ParquetStore
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
    store = ParquetStore(tmp_path)
    frame = minute_bars(1000)
    meta = DatasetMeta("UTC", "test", coverage_start=frame.index[0], history_complete=True)
    info = store.write("BTC-USD", R1M, frame, meta)
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), frame)
    assert (info.rows, info.first, info.last) == (1000, frame.index[0], frame.index[-1])
    assert store.info("BTC-USD", R1M).meta == meta
    assert info.path == tmp_path / "1m" / "BTC-USD.parquet"
    assert [p.name for p in info.path.parent.iterdir()] == ["BTC-USD.parquet"]  # no temp file left


def test_missing_dataset_is_none(tmp_path):
    store = ParquetStore(tmp_path)
    assert store.info("SPY", R1D) is None
    assert store.read("SPY", R1D) is None
    assert store.list_datasets() == []


def test_time_filter_is_pushed_into_the_read(tmp_path):
    """Row groups outside the window are never read: damage in the first one goes unnoticed by a late slice."""
    store = ParquetStore(tmp_path, memory_cache_bytes=0)  # no memory cache: every read goes to the file
    frame = minute_bars(ROW_GROUP_SIZE * 4)
    info = store.write("ETH-USD", R1M, frame, DatasetMeta("UTC", "test"))
    start, end = frame.index[-5000], frame.index[-100]
    import pyarrow.parquet as pq

    first_group = pq.ParquetFile(info.path).metadata.row_group(0).column(1)
    offset = first_group.data_page_offset + 200
    with open(info.path, "r+b") as handle:  # overwrite bytes inside the first row group's Open column
        handle.seek(offset)
        handle.write(b"\x00" * 64)

    window = store.read("ETH-USD", R1M, start=start, end=end)
    pd.testing.assert_frame_equal(window, frame[(frame.index >= start) & (frame.index < end)])
    with pytest.raises(CacheCorruptError):
        store.read("ETH-USD", R1M)  # the full read meets the damage, verified by page checksums


def test_corrupt_file_is_set_aside_and_never_served(tmp_path):
    store = ParquetStore(tmp_path)
    info = store.write("SPY", R1D, minute_bars(10).tz_convert("UTC"), DatasetMeta("UTC", "test"))
    info.path.write_bytes(info.path.read_bytes()[: info.path.stat().st_size // 2])  # torn
    with pytest.raises(CacheCorruptError) as caught:
        store.read("SPY", R1D)
    assert caught.value.code == "CACHE_CORRUPT"
    assert not info.path.exists()
    assert store.info("SPY", R1D) is None
    quarantined = list((tmp_path / ".quarantine" / "1d").iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.startswith("SPY.")


def test_readers_never_see_a_torn_file_while_writers_replace_it(tmp_path):
    store = ParquetStore(tmp_path)
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
    stop.set()
    for t in threads:
        t.join()
    assert problems == []


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    """A write that hits a file-size limit (EFBIG, like a full disk) raises STORAGE_FULL and changes nothing."""
    store = ParquetStore(tmp_path)
    old = minute_bars(100)
    store.write("BTC-USD", R1M, old, DatasetMeta("UTC", "test"))
    script = textwrap.dedent(
        f"""
        import resource, signal, json
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        from tests.unit.test_store import minute_bars
        from dataprovider.engine.datasets import DatasetMeta
        from dataprovider.engine.store import ParquetStore
        from dataprovider.enums import DataResolution
        from dataprovider.errors import StorageFullError
        store = ParquetStore({str(tmp_path)!r})
        try:
            store.write("BTC-USD", DataResolution.MINUTE_01, minute_bars(200_000), DatasetMeta("UTC", "test"))
            print(json.dumps("written"))
        except StorageFullError as exc:
            print(json.dumps(exc.code))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == "STORAGE_FULL"
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), old)
    assert [p.name for p in (tmp_path / "1m").iterdir()] == ["BTC-USD.parquet"]


def test_lock_is_exclusive_across_processes(tmp_path):
    store = ParquetStore(tmp_path, lock_timeout=0.2)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from dataprovider.engine.store import ParquetStore
                from dataprovider.enums import DataResolution
                with ParquetStore({str(tmp_path)!r}).lock("SPY", DataResolution.DAY_01):
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


def test_sweep_removes_stray_temp_files_but_not_live_ones(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("SPY", R1D, minute_bars(5), DatasetMeta("UTC", "test"))
    stray = tmp_path / "1d" / ".SPY.parquet.abc123.tmp"
    stray.write_bytes(b"half a file")
    live = tmp_path / "1d" / ".AAPL.parquet.def456.tmp"
    live.write_bytes(b"being written")
    with store.lock("AAPL", R1D):
        # Another process's view: it cannot take AAPL's lock while we hold it.
        other = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from dataprovider.engine.store import ParquetStore; "
                f"print(ParquetStore({str(tmp_path)!r}).sweep_temp_files())",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    assert other.stdout.strip() == "1"
    assert not stray.exists() and live.exists()
    assert store.read("SPY", R1D) is not None


@pytest.mark.parametrize("ticker", ["../etc", "a/b", "..", "/abs", "SP Y", "x\x00", "C:\\x", "ÄPL", "A" * 33])
def test_tickers_can_never_become_paths(tmp_path, ticker):
    store = ParquetStore(tmp_path)
    with pytest.raises(InvalidRequestError) as caught:
        store.path_for(ticker, R1D)
    assert caught.value.code == "INVALID_TICKER"


@pytest.mark.parametrize("ticker", ["^GSPC", "EURUSD=X", "BRK-B", "BTC-USD", "0700.HK", "ES=F"])
def test_yahoo_symbols_map_inside_the_data_dir(tmp_path, ticker):
    path = ParquetStore(tmp_path).path_for(ticker, R1D)
    assert path.parent == tmp_path.resolve() / "1d" and path.name == f"{ticker}.parquet"


def test_recent_datasets_are_served_from_memory_until_their_file_changes(tmp_path):
    clock = FakeClock()
    store = ParquetStore(tmp_path, cache=MemoryCache(64 * 2**20, recheck_seconds=0.25, clock=clock))
    first = minute_bars(1000, seed=1)
    info = store.write("BTC-USD", R1M, first, DatasetMeta("UTC", "test"))
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), first)
    assert store.memory.used_bytes > 0
    # Same size and modification time, other bytes: only a copy in memory can still answer.
    stat = info.path.stat()
    info.path.write_bytes(b"\0" * stat.st_size)
    os.utime(info.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), first)
    # A new version written by another process (another store on the same directory) is
    # noticed once the last look at the file is older than recheck_seconds.
    second = minute_bars(500, seed=2)
    ParquetStore(tmp_path).write("BTC-USD", R1M, second, DatasetMeta("UTC", "test"))
    clock.advance(0.3)
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), second)
    assert store.info("BTC-USD", R1M).rows == 500
    # One written by this store is seen at once.
    third = minute_bars(300, seed=3)
    store.write("BTC-USD", R1M, third, DatasetMeta("UTC", "test"))
    pd.testing.assert_frame_equal(store.read("BTC-USD", R1M), third)


def test_memory_cache_stays_within_its_budget(tmp_path):
    frame = minute_bars(20_000)
    store = ParquetStore(tmp_path, memory_cache_bytes=int(4.5 * 20_000 * 48))  # room for four of the six
    for i in range(6):
        store.write(f"T{i}", R1M, frame, DatasetMeta("UTC", "test"))
        assert store.read(f"T{i}", R1M).equals(frame)
        assert store.memory.used_bytes <= store.memory.max_bytes
    assert store.memory.used_bytes > 0
