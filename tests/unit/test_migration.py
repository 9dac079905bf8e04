"""Converting a cache of the previous layout (one Parquet file per dataset) to Delta tables, on real files."""

from __future__ import annotations

import pandas as pd
import pytest

from dataprovider.engine.datasets import DatasetMeta
from dataprovider.engine.migration import migrate, needs_migration
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataResolution
from server.app import build_service
from server.settings import Settings
from tests.support.frames import assert_same_frame
from tests.support.old_cache import DATASETS, old_file, write_old_cache, write_old_file

DAY = DataResolution.DAY_01


def assert_holds(root, ticker, resolution, frame, meta) -> None:
    """The table of a dataset, read from disk by a store of its own, holds ``frame`` with ``meta``."""
    store = DeltaStore(root, memory_cache_bytes=0)
    info = store.info(ticker, resolution)
    assert info is not None and info.meta == meta and info.rows == len(frame)
    assert_same_frame(store.read(ticker, resolution), frame)


def test_every_dataset_reads_back_equal_and_the_old_files_move_aside(tmp_path):
    written = write_old_cache(tmp_path)
    assert needs_migration(tmp_path)
    lines = []
    report = migrate(DeltaStore(tmp_path), echo=lines.append)
    assert [(d.ticker, d.resolution.value, d.rows) for d in report.converted] == sorted(
        [(t, r.value, len(f)) for t, r, f, _ in written], key=lambda d: (list(DataResolution).index(d[1]), d[0])
    )
    assert report.already_done == report.quarantined == report.failed == []
    for ticker, resolution, frame, meta in written:
        assert_holds(tmp_path, ticker, resolution, frame, meta)
        assert not old_file(tmp_path, ticker, resolution).exists()
        assert old_file(tmp_path / ".migrated", ticker, resolution).is_file()
    assert not needs_migration(tmp_path)
    assert f"^GSPC 1m: converted, {len(written[1][2])} bars" in lines
    assert report.summary().startswith(f"{len(DATASETS)} datasets: {len(DATASETS)} converted, 0 already done, ")


def test_a_second_run_is_a_no_op(tmp_path):
    write_old_cache(tmp_path, [("SPY", "1d"), ("^GSPC", "1m")])
    store = DeltaStore(tmp_path)
    migrate(store)
    versions = {d.ticker: d.version for d in store.list_datasets()}
    again = migrate(store)
    assert again.converted == again.already_done == again.quarantined == again.failed == []
    assert {d.ticker: d.version for d in store.list_datasets()} == versions


def flip_bytes(path) -> None:
    data = bytearray(path.read_bytes())
    for at in range(len(data) // 3, len(data) // 3 + 64):
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_bookkeeping(path) -> None:
    frame = pd.read_parquet(path)
    frame.to_parquet(path)  # pandas' own metadata only


@pytest.mark.parametrize("damage", [flip_bytes, truncate, drop_bookkeeping])
def test_a_damaged_file_is_quarantined_and_reported(tmp_path, damage):
    written = write_old_cache(tmp_path, [("SPY", "1d"), ("BTC-USD", "1h")])
    damage(old_file(tmp_path, "BTC-USD", "1h"))
    store = DeltaStore(tmp_path)
    report = migrate(store)
    assert [(d.ticker, d.resolution.value, d.rows) for d in report.quarantined] == [("BTC-USD", "1h", 0)]
    assert "moved to" in report.quarantined[0].note
    assert (tmp_path / ".quarantine" / "1h" / "BTC-USD.parquet").is_file()
    assert not old_file(tmp_path, "BTC-USD", "1h").exists()
    assert store.info("BTC-USD", "1h") is None  # never converted
    assert [d.ticker for d in report.converted] == ["SPY"]
    assert_holds(tmp_path, "SPY", DAY, written[0][2], written[0][3])


def test_a_table_that_gained_newer_bars_keeps_them(tmp_path):
    [(ticker, resolution, frame, meta)] = write_old_cache(tmp_path, [("SPY", "1d")])
    store = DeltaStore(tmp_path)
    store.write(ticker, resolution, frame, meta)  # a run killed after its commit, then a download appended
    newer = frame.iloc[-3:].copy()
    newer.index = newer.index + pd.Timedelta(days=7)
    newer_meta = meta.replace(source="yahoo", last_fetched=pd.Timestamp("2025-01-02", tz="UTC"))
    store.append(ticker, resolution, newer, newer_meta)
    report = migrate(store)
    assert [(d.ticker, d.note) for d in report.already_done] == [("SPY", "the table holds 3 more bars")]
    assert_holds(tmp_path, ticker, resolution, pd.concat([frame, newer]), newer_meta)
    assert old_file(tmp_path / ".migrated", ticker, resolution).is_file()


def test_a_table_lacking_some_bars_gets_them_merged_in_keeping_its_own(tmp_path):
    [(ticker, resolution, frame, meta)] = write_old_cache(tmp_path, [("SPY", "1d")])
    store = DeltaStore(tmp_path)
    held = frame.iloc[-100:].copy()
    held.iloc[0, held.columns.get_loc("Close")] += 1.0  # a revision the table has and the file does not
    newer = frame.iloc[-2:].copy()
    newer.index = newer.index + pd.Timedelta(days=7)
    held = pd.concat([held, newer])
    held_meta = DatasetMeta(meta.timezone, "yahoo", last_fetched=pd.Timestamp("2025-01-02", tz="UTC"))
    store.write(ticker, resolution, held, held_meta)
    report = migrate(store)
    assert [d.ticker for d in report.converted] == ["SPY"]
    added = len(frame) - 100
    assert report.converted[0].note == f"merged into a table of 102 bars: {added} added, 1 kept as the table had them"
    assert_holds(tmp_path, ticker, resolution, pd.concat([frame.iloc[:-100], held]), held_meta)


def test_stray_temporary_files_of_the_previous_version_are_deleted(tmp_path):
    write_old_cache(tmp_path, [("SPY", "1d")])
    strays = [tmp_path / "1d" / ".SPY.parquet.k2j4h5.tmp", tmp_path / "1m" / ".^GSPC.parquet.x9y8.tmp"]
    for stray in strays:
        stray.parent.mkdir(exist_ok=True)
        stray.write_bytes(b"PAR1 half-written")
    report = migrate(DeltaStore(tmp_path))
    assert report.temp_files_removed == 2 and not any(stray.exists() for stray in strays)
    assert [d.ticker for d in report.converted] == ["SPY"]


def test_an_empty_dataset_converts(tmp_path):
    [(ticker, resolution, frame, meta)] = write_old_cache(tmp_path, [("ETH-USD", "1d")])
    write_old_file(tmp_path, ticker, resolution, frame.iloc[:0], meta)
    report = migrate(DeltaStore(tmp_path))
    assert [(d.ticker, d.rows) for d in report.converted] == [("ETH-USD", 0)]
    assert_holds(tmp_path, ticker, resolution, frame.iloc[:0], meta)


def test_the_server_converts_the_cache_when_it_starts(tmp_path, caplog):
    written = write_old_cache(tmp_path, [("SPY", "1d"), ("^GSPC", "1m")])
    caplog.set_level("INFO")
    service = build_service(Settings(data_dir=tmp_path, offline=True, load_samples=False))
    try:
        for ticker, resolution, frame, meta in written:
            assert_holds(tmp_path, ticker, resolution, frame, meta)
    finally:
        service.close()
    assert "converted the previous cache layout: 2 datasets: 2 converted" in caplog.text
    assert "SPY 1d: converted" in caplog.text
