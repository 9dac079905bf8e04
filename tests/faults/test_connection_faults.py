"""Connections that break: a client process dying mid-batch, a server dying (and coming back) under a client.

A client whose server goes away learns it at once (CONNECTION_FAILED), not when
its timeout runs out, and the same client object works again once a server is
back. A server whose client goes away drops the rest of that client's work and
goes on serving the others.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

from dataprovider import DataProviderLocal
from dataprovider.engine.store import DeltaStore
from tests.support import services
from tests.support.frames import assert_same_frame
from tests.support.replay_server import logged_requests
from tests.support.waiting import wait_until

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
ROOT = Path(__file__).resolve().parents[2]
#: A download that does not end while the test runs (the replay waits this long for real).
STALLED = 120.0


class CountingService(services.CountingService):
    """Takes a moment per ticker and counts the tickers it started."""

    started: list[str] = []


def settled(count, interval: float = 0.3) -> int:
    """``count()`` once it stopped changing for ``interval`` seconds."""
    before = count()
    while True:
        time.sleep(interval)
        now = count()
        if now == before:
            return now
        before = now


def test_a_client_process_killed_mid_batch_has_the_rest_of_its_batch_dropped(live_server):
    """What a kernel restart does to a notebook's batch: the process goes, with no cancel sent."""
    CountingService.started = []
    server = live_server(service_class=CountingService)
    tickers = ["SPY", "AAPL", "GOOG"] + [f"X{i:03d}" for i in range(300)]  # some 6 s of work
    script = textwrap.dedent(
        f"""
        import sys
        from dataprovider import DataProviderLocal

        def progress(update):
            print("progress", update["index"], flush=True)

        DataProviderLocal({server.url!r}, timeout=60).get_batch_data_socket(
            {tickers!r}, local_only=True, progress=False, progress_callback=progress
        )
        print("finished", flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env) as kernel:
        try:
            assert kernel.stdout.readline().startswith("progress")  # the batch is under way
        finally:
            kernel.send_signal(signal.SIGKILL)
    started = settled(lambda: len(CountingService.started))
    assert started < len(tickers) / 2
    other = server.client(timeout=10)  # the restarted kernel, and everyone else, are served
    assert len(other.get_batch_data_socket(["SPY", "AAPL"], local_only=True, limit=3, progress=False)) == 2


def test_a_server_killed_under_a_waiting_client_fails_it_fast_and_a_restarted_one_serves_it(server_process):
    first = server_process((NVDA,), delay=STALLED)
    provider = DataProviderLocal(first.url, timeout=STALLED)
    provider.connect()
    outcome: dict = {}

    def download() -> None:
        provider.get_data_socket(
            "NVDA", time_start="2021-06-01", time_end="2021-07-01", local_only=False, error_callback=outcome.update
        )

    waiting = threading.Thread(target=download)
    waiting.start()
    wait_until(lambda: logged_requests(first.request_log), what="the download to start")
    first.process.kill()
    first.process.wait()
    waiting.join(STALLED / 4)
    assert not waiting.is_alive() and outcome["code"] == "CONNECTION_FAILED"  # not REQUEST_TIMEOUT, much later
    assert not provider.connected

    down: dict = {}
    assert provider.get_data_socket("SPY", local_only=True, error_callback=down.update) is None
    assert down["code"] == "CONNECTION_FAILED"  # nobody listens: refused at once

    table = first.data_dir / "1d" / "SPY"
    committed = DeltaStore(first.data_dir, memory_cache_bytes=0).read("SPY", "1d")
    stray = table / f"part-{uuid.uuid4()}.parquet"  # what a server killed mid-write leaves: a file no commit names
    stray.write_bytes(next(table.glob("part-*.parquet")).read_bytes()[:1000])
    server_process(port=first.port, data_dir=first.data_dir)  # the server is back, on the same port
    frame = provider.get_data_socket("SPY", local_only=True, limit=5)  # the same client object reconnects
    assert len(frame) == 5 and provider.connected
    assert_same_frame(provider.get_data_socket("SPY", "1d", "max", local_only=True), committed)  # the stray unseen
    assert not (first.data_dir / ".quarantine").exists()
    provider.disconnect()
