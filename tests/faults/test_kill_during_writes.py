"""A writer killed with SIGKILL at random points: every dataset reads back whole, as last committed.

The writer (:mod:`tests.support.store_writer`) journals each version after its
commit returns (whole writes, appends, revised ranges, and the compactions and
vacuums they set off), so after a kill a dataset must hold the last journaled
version, or the next one when the kill fell between the commit and the journal
entry. A kill may leave data files no commit names; readers never see them and
nothing is ever quarantined.
"""

from __future__ import annotations

import multiprocessing
import random

import pytest
from deltalake import DeltaTable

from dataprovider.engine.store import DeltaStore
from tests.support.frames import assert_same_frame
from tests.support.store_writer import DATASETS, ROUND, parse_journal, version_frame, write_versions

KILLS = 40
SEED = 20240501


@pytest.fixture(scope="module")
def forkserver():
    """Processes forked from a server that has imported pandas and the store: a start costs milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.support.store_writer"])
    return context


def committed_version(root, ticker: str, allowed: list[int | None]) -> int | None:
    """Which of the ``allowed`` versions the dataset holds (None: not written yet), checked in full."""
    store = DeltaStore(root, memory_cache_bytes=0)  # every read goes to the files
    resolution = dict(DATASETS)[ticker]
    info = store.info(ticker, resolution)
    if info is None:
        assert None in allowed, f"{ticker} vanished"
        return None
    version = int(info.meta.source.removeprefix("v"))
    assert version in allowed, f"{ticker} holds version {version}, expected one of {allowed}"
    frame, meta = version_frame(ticker, seed=SEED, version=version)
    assert info.meta == meta and info.rows == len(frame)
    assert_same_frame(store.read(ticker, resolution), frame)
    assert DeltaTable(str(info.path)).to_pyarrow_table().num_rows == len(frame)  # as any Delta reader sees it
    return version


def test_sigkill_at_random_points_never_loses_or_tears_a_dataset(tmp_path, forkserver):
    rng = random.Random(SEED)
    root = tmp_path / "cache"
    current: dict[str, int | None] = {ticker: None for ticker, _ in DATASETS}
    compactions_seen = 0
    for run in range(KILLS):
        journal = tmp_path / f"journal-{run}"
        first = ROUND * 100 * (run + 1)
        ready = forkserver.Event()
        writer = forkserver.Process(target=write_versions, args=(str(root), str(journal), SEED, first, ready))
        writer.start()
        assert ready.wait(30)
        writer.join(rng.uniform(0.0, 0.12))  # let it write for a while: a few versions at most
        writer.kill()  # SIGKILL
        writer.join()
        assert writer.exitcode == -9, "the writer ended before it was killed"

        committed = parse_journal(journal)
        for ticker in current:
            last = committed.get(ticker)
            allowed = [current[ticker], first] if last is None else [last, last + 1]
            current[ticker] = committed_version(root, ticker, allowed)

        compactions_seen += sum('"dataChange":false' in p.read_text() for p in root.rglob("_delta_log/*.json"))
        assert not (root / ".quarantine").exists()
    assert compactions_seen > 0  # the kills fell among compactions too
    assert current["BTC-USD"] is not None and current["SPY"] is not None
