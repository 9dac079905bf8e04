"""The same missing data asked for at once: by two clients of one server, and by two processes on one data dir.

Either way Yahoo is asked once and the dataset written once; every asker gets the same answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd

from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataResolution
from dataprovider.protocol.query import BarsQuery
from tests.conftest import Now
from tests.support.faulty_store import FaultyStore
from tests.support.frames import assert_same_frame
from tests.support.replay_server import LoggingReplay, logged_requests

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
ROOT = Path(__file__).resolve().parents[2]


def bars_requests(log: Path) -> list[str]:
    """The logged chart requests that asked for bars (not yfinance's timezone probes)."""
    return [url for url in logged_requests(log) if "period1=" in url]


def test_two_clients_asking_at_once_cause_one_download_and_one_write(live_server, make_yahoo_source, tmp_path):
    log = tmp_path / "requests"
    replay = LoggingReplay(NVDA, log=log, delay=0.2)  # slow enough that the second asks mid-download
    now = Now(pd.Timestamp("2022-02-01", tz="UTC"))
    server = live_server(make_yahoo_source(replay, now), samples=False, clock=now, store_class=FaultyStore)
    clients = [server.client(timeout=20) for _ in range(2)]
    barrier = threading.Barrier(2)
    frames: dict[int, pd.DataFrame] = {}

    def ask(i: int) -> None:
        barrier.wait()
        frames[i] = clients[i].get_data_socket("NVDA", period="6mo", local_only=False)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert frames[0] is not None and frames[1] is not None
    assert_same_frame(frames[0], frames[1])
    assert replay.fetch_count("NVDA") == 1 and len(bars_requests(log)) == 1
    assert server.store.writes == 1


def run_twins(tmp_path: Path, data_dir: Path, now: str, peers: int = 2) -> tuple[list[dict], Path]:
    """``peers`` processes asking for NVDA at the same moment; their result summaries and the request log."""
    log, barrier = tmp_path / "requests", tmp_path / "barrier"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.fetch_process",
                str(data_dir),
                str(barrier),
                f"p{i}",
                str(peers),
                now,
                "NVDA",
                "6mo",
                str(log),
                NVDA,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for i in range(peers)
    ]
    summaries = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        summaries.append(json.loads(out))
    return summaries, log


def test_two_processes_on_one_data_dir_download_missing_data_once(tmp_path):
    data_dir = tmp_path / "data"
    summaries, log = run_twins(tmp_path, data_dir, "2022-02-01T00:00Z")
    assert len(bars_requests(log)) == 1
    assert summaries[0] == summaries[1] and summaries[0]["source"] == "yahoo"
    info = DeltaStore(data_dir).info("NVDA", DataResolution.DAY_01)
    assert info.meta.last_fetched == pd.Timestamp("2022-02-01", tz="UTC")
    assert list((data_dir / "1d").iterdir()) == [info.path]


def test_two_processes_on_one_data_dir_refresh_a_stale_dataset_once(tmp_path, make_yahoo_source):
    """Both see the cached file as behind; the one that waits for the lock must look at the file again."""
    data_dir = tmp_path / "data"
    replay = LoggingReplay(NVDA)
    then = Now(pd.Timestamp("2021-07-01 22:00", tz="UTC"))
    replay.as_of(then.value)
    service = DataService(DeltaStore(data_dir), make_yahoo_source(replay, then), clock=then)
    service.get_bars(BarsQuery("NVDA", DataResolution.DAY_01, local_only=False))
    service.close()

    summaries, log = run_twins(tmp_path, data_dir, "2021-07-16T22:00Z")
    assert len(bars_requests(log)) == 1  # one tail update, not one per process
    assert summaries[0] == summaries[1] and summaries[0]["end_date"].startswith("2021-07-16")
    later = Now(pd.Timestamp("2021-07-16 22:00", tz="UTC"))
    replay.as_of(later.value)
    cached = DeltaStore(data_dir).read("NVDA", DataResolution.DAY_01)
    fresh = make_yahoo_source(replay, later).fetch(
        "NVDA", DataResolution.DAY_01, cached.index[0].tz_convert("UTC"), None
    )
    assert_same_frame(cached, fresh.frame)  # what a single download at that time gives
