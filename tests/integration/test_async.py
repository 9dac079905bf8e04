"""Event-loop safety: blocking calls inside coroutines, awaitable twins that overlap, clean cancellation."""

from __future__ import annotations

import _thread
import asyncio
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from dataprovider.engine.service import DataService
from tests.support.services import CountingService


class BarrierService(DataService):
    """Answers a query only once three are being answered at the same time (on worker threads)."""

    barrier = threading.Barrier(3, timeout=10)

    def cached_answer(self, query, on_status=None):
        return None  # as if the query needed the network: the server hands it to a worker

    def get_bars(self, query, on_status=None):
        self.barrier.wait()
        return super().get_bars(query, on_status)


class SlowService(CountingService):
    """Takes a moment per ticker and counts the tickers it started."""

    started: list[str] = []
    delay = 0.05


SAMPLE_TICKERS = ["SPY", "AAPL", "GOOG", "INTC", "BTC-USD", "ETH-USD", "SOL-USD", "EWG", "CALM", "^GSPC"]


def test_blocking_calls_work_inside_a_coroutine(live_server):
    provider = live_server().client()

    async def main():
        frame = provider.get_data_socket("SPY", limit=3)  # blocking, from inside a running loop
        batch = provider.get_batch_data_socket(["SPY", "AAPL"], limit=2, progress=False)
        return frame, batch

    frame, batch = asyncio.run(main())
    assert len(frame) == 3 and {t: len(f) for t, f in batch.items()} == {"SPY": 2, "AAPL": 2}


def test_awaited_calls_overlap(live_server):
    """Three awaited requests each wait for the others on the server: they only finish if they run together."""
    BarrierService.barrier.reset()
    provider = live_server(service_class=BarrierService).client()

    async def main():
        return await asyncio.gather(*(provider.get_data_async(t, limit=5) for t in ("SPY", "AAPL", "GOOG")))

    frames = asyncio.run(main())
    assert [len(f) for f in frames] == [5, 5, 5]
    assert not provider.connected  # the last one to finish closed the shared connection


def test_async_batch_reports_progress_on_the_loop_thread(live_server):
    provider = live_server().client()
    seen = []

    async def main():
        loop_thread = threading.get_ident()
        frames = await provider.get_batch_data_async(
            ["SPY", "NOPE", "AAPL"],
            limit=4,
            local_only=True,
            progress=False,
            progress_callback=lambda p: seen.append((p["index"], p["ticker"], threading.get_ident() == loop_thread)),
        )
        return frames

    frames = asyncio.run(main())
    assert list(frames) == ["SPY", "AAPL"]
    assert [index for index, _, _ in seen] == [1, 2, 3]
    assert all(on_loop for _, _, on_loop in seen)


def test_cancelling_an_awaited_batch_stops_the_server_work(live_server):
    SlowService.started = []
    server = live_server(service_class=SlowService)
    provider = server.client()
    provider.connect()
    tickers = SAMPLE_TICKERS + [f"X{i:03d}" for i in range(200)]  # 200 of them not cached

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(provider.get_batch_data_async(tickers, local_only=True, progress=False), 0.3)

    asyncio.run(main())
    time.sleep(0.3)  # let the workers finish the tickers they had started
    started = len(SlowService.started)
    time.sleep(0.3)
    assert len(SlowService.started) == started < len(tickers)  # nothing new started after the cancel
    assert len(provider.get_data_socket("SPY", limit=2, auto_disconnect=False)) == 2  # connection still usable
    provider.disconnect()


def test_ctrl_c_during_a_batch_stops_it_cleanly(live_server):
    SlowService.started = []
    server = live_server(service_class=SlowService)
    provider = server.client()
    provider.connect()
    tickers = SAMPLE_TICKERS + [f"X{i:03d}" for i in range(200)]
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        provider.get_batch_data_socket(tickers, local_only=True, progress=False)
    time.sleep(0.3)
    started = len(SlowService.started)
    time.sleep(0.3)
    assert len(SlowService.started) == started < len(tickers)
    frame = provider.get_data_socket("AAPL", limit=3, auto_disconnect=False)
    assert provider.connected and len(frame) == 3


def test_importing_patches_no_event_loop():
    code = (
        "import asyncio, sys; policy = asyncio.get_event_loop_policy();"
        "import dataprovider, dataprovider.client.provider, dataprovider.notebook.progress;"
        "assert 'nest_asyncio' not in sys.modules;"
        "assert asyncio.get_event_loop_policy() is policy;"
        "assert asyncio.run.__module__ == 'asyncio.runners';"
        "print('clean')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "clean", result.stderr


def test_async_twin_matches_blocking_call(live_server):
    provider = live_server().client()
    blocking = provider.get_data_socket("GOOG", "1wk", "2y")
    awaited = asyncio.run(provider.get_data_async("GOOG", "1wk", "2y"))
    pd.testing.assert_frame_equal(blocking, awaited)
