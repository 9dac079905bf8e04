"""SIGTERM and Ctrl-C (SIGINT) while the server works: it stops, exits 0 soon, and leaves the cache whole.

Downloads that finish within the grace period are written; a download that stalls
is abandoned. Either way no data file is left that no commit names (what a write
cut short leaves), every dataset reads back whole, and a client waiting for an
answer learns at once that the server went away.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest

from dataprovider import DataProviderLocal
from dataprovider.engine.datasets import DatasetMeta
from dataprovider.engine.store import DeltaStore
from dataprovider.errors import ServerBusyError
from dataprovider.sources.sample import load_sample, sample_entries
from tests.support.frames import assert_same_frame
from tests.support.replay_server import logged_requests
from tests.support.waiting import wait_until

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
MSFT = "nyf2_historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"
OTHERS = (
    "nyf2_chart-AAPL-2020-08-31-to-2020-11-07.json",
    "nyf2_chart-BTC-USD-2020-01-01-to-2020-01-03.json",
    "nyf2_chart-EURUSD=X-2020-01-01-to-2020-01-03.json",
    "nyf2_chart-GC=F-2020-01-01-to-2020-01-03.json",
    "nyf2_chart-WSU.DE-2023-08-04-to-2023-08-09.json",
)
TICKERS = ["NVDA", "MSFT", "AAPL", "BTC-USD", "EURUSD=X", "GC=F", "WSU.DE"]
WINDOW = {"time_start": "2021-03-01", "time_end": "2021-06-01"}
#: A download that does not end while the test runs (the replay waits this long for real).
STALLED = 120.0
#: Longer than any shutdown may take.
PATIENCE = 30.0


def unnamed_data_files(data_dir: Path) -> list[str]:
    """The data files of the cache's tables that no commit in their log names: what a write cut short leaves."""
    unnamed = []
    for log in sorted(data_dir.glob("*/*/_delta_log")):
        named = set()
        for commit in log.glob("*.json"):
            actions = [json.loads(line) for line in commit.read_text(encoding="utf-8").splitlines()]
            named.update(action["add"]["path"] for action in actions if "add" in action)
        unnamed += [str(p.relative_to(data_dir)) for p in log.parent.glob("*.parquet") if p.name not in named]
    return unnamed


def assert_cache_whole(data_dir) -> list[str]:
    """Every dataset reads back whole (page checksums verified), no half-written data file, nothing set aside."""
    assert unnamed_data_files(data_dir) == []
    store = DeltaStore(data_dir, memory_cache_bytes=0)
    infos = store.list_datasets()
    assert len(infos) == store.count_datasets()
    for info in infos:
        assert len(store.read(info.ticker, info.resolution)) == info.rows
    assert not (data_dir / ".quarantine").exists()
    return sorted(f"{i.ticker} {i.resolution.value}" for i in infos)


def in_background(call) -> tuple[threading.Thread, dict]:
    """Run ``call(outcome)`` on a thread; ``outcome`` collects what it reports."""
    outcome: dict = {}
    thread = threading.Thread(target=call, args=(outcome,))
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_during_a_batch_of_downloads_exits_0_with_the_cache_whole(server_process, signum):
    server = server_process((NVDA, MSFT, *OTHERS), delay=0.2)
    before = assert_cache_whole(server.data_dir)
    provider = DataProviderLocal(server.url, timeout=PATIENCE * 2)

    def batch(outcome: dict) -> None:
        errors: list[dict] = []
        outcome["frames"] = provider.get_batch_data_socket(
            TICKERS, **WINDOW, local_only=False, progress=False, error_callback=errors.append
        )
        outcome["codes"] = {e["code"] for e in errors}

    thread, outcome = in_background(batch)
    wait_until(lambda: logged_requests(server.request_log), what="the first download")
    server.process.send_signal(signum)
    assert server.process.wait(PATIENCE) == 0
    thread.join(PATIENCE)
    assert not thread.is_alive() and "REQUEST_TIMEOUT" not in outcome["codes"]
    assert outcome["codes"] <= {"NO_DATA", "CONNECTION_FAILED", "CANCELLED"}, server.output.read_text()
    after = assert_cache_whole(server.data_dir)
    assert set(before) <= set(after) <= set(before) | {"NVDA 1d", "MSFT 1d"}
    assert "shutting down" in server.output.read_text()


def test_a_stalled_download_does_not_hold_up_a_ctrl_c(server_process):
    server = server_process((NVDA,), delay=STALLED)
    before = assert_cache_whole(server.data_dir)
    provider = DataProviderLocal(server.url, timeout=STALLED)

    def download(outcome: dict) -> None:
        provider.get_data_socket("NVDA", **WINDOW, local_only=False, error_callback=outcome.update)

    thread, outcome = in_background(download)
    wait_until(lambda: logged_requests(server.request_log), what="the download to start")
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(PATIENCE) == 0  # the download would take minutes
    thread.join(PATIENCE)
    assert not thread.is_alive() and outcome["code"] == "CONNECTION_FAILED"
    assert assert_cache_whole(server.data_dir) == before  # nothing half-written, nothing lost
    assert "abandon" in server.output.read_text()


class PausingStore(DeltaStore):
    """A store whose writes wait, once under way, until the test lets them go on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.under_way = threading.Event()
        self.go_on = threading.Event()

    def _write_data_file(self, path, rows):
        self.under_way.set()
        self.go_on.wait(PATIENCE)
        return super()._write_data_file(path, rows)


def test_closing_the_store_lets_the_write_under_way_finish_and_refuses_new_ones(tmp_path):
    """What the server does before it abandons stalled work at the end of its grace period."""
    spy = load_sample(next(e for e in sample_entries() if e.ticker == "SPY"))
    store = PausingStore(tmp_path)
    writer = threading.Thread(target=store.write, args=("SPY", "1d", spy, DatasetMeta("America/New_York", "test")))
    writer.start()
    assert store.under_way.wait(PATIENCE)
    assert store.close(timeout=0.05) is False  # the write is still under way
    store.go_on.set()
    assert store.close(timeout=PATIENCE) is True
    writer.join()
    assert_same_frame(store.read("SPY", "1d"), spy)
    with pytest.raises(ServerBusyError, match="shutting down"):
        store.write("AAPL", "1d", spy, DatasetMeta("America/New_York", "test"))
    assert assert_cache_whole(tmp_path) == ["SPY 1d"]
