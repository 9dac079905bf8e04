"""The server's limits on a real server: BUSY instead of piling up, fair turns, and clients that stop reading."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
import websocket

from dataprovider import DataProviderLocal, protocol
from dataprovider.client.connection import _InOrderSocketIOClient as InOrderClient
from dataprovider.engine.service import DataService
from dataprovider.notebook.launcher import free_port, start_server, stop
from dataprovider.sources.sample import load_sample, sample_entries
from server.__main__ import parse_args
from server.socket.limits import Limits
from tests.support.frames import assert_same_frame

FINAL = {protocol.DATA_RESPONSE, protocol.DATA_ERROR, protocol.BATCH_RESPONSE, protocol.BATCH_ERROR}


def sample(ticker: str, resolution: str) -> pd.DataFrame:
    return load_sample(next(e for e in sample_entries() if (e.ticker, e.resolution.value) == (ticker, resolution)))


class Recorder:
    """A raw Socket.IO client that sends without waiting and records every final reply by request_id."""

    def __init__(self, url: str) -> None:
        self.finals: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        self._changed = threading.Condition()
        self.sio = InOrderClient(reconnection=False)
        self.sio.on("*", self._record)
        self.sio.connect(url, transports=["websocket"])

    def _record(self, event: str, payload=None) -> None:
        if event in FINAL:
            with self._changed:
                self.finals[payload["request_id"]].append((event, payload))
                self._changed.notify_all()

    def send(self, event: str, payload: dict) -> None:
        self.sio.emit(event, payload)

    def wait(self, *request_ids: str, timeout: float = 20) -> dict[str, tuple[str, dict]]:
        """The final reply of each request, once all have one; fails on a second final reply."""
        with self._changed:
            assert self._changed.wait_for(lambda: all(self.finals[r] for r in request_ids), timeout), [
                r for r in request_ids if not self.finals[r]
            ]
        assert all(len(self.finals[r]) == 1 for r in request_ids), {r: self.finals[r] for r in request_ids}
        return {r: self.finals[r][0] for r in request_ids}

    def close(self) -> None:
        self.sio.disconnect()


class Gate:
    """A DataService whose batches wait at a gate, recording which tickers each batch asked for, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.opened = threading.Event()
        self.entered = threading.Semaphore(0)
        gate = self

        class GatedService(DataService):
            def get_batch(self, query, tickers, on_item=None, cancelled=None):
                gate.calls.append(tuple(tickers))
                gate.entered.release()
                assert gate.opened.wait(timeout=30)
                return super().get_batch(query, tickers, on_item, cancelled)

        self.service_class = GatedService

    def wait_entered(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.entered.acquire(timeout=10)


@pytest.fixture
def gate():
    gate = Gate()
    yield gate
    gate.opened.set()  # never leave a worker waiting


@pytest.fixture
def recorders():
    made: list[Recorder] = []

    def make(url: str) -> Recorder:
        made.append(Recorder(url))
        return made[-1]

    yield make
    for recorder in made:
        recorder.close()


def batch(request_id: str, *tickers: str) -> dict:
    return {"request_id": request_id, "tickers": list(tickers) or ["SPY"], "limit": 2, "local_only": True}


def data(request_id: str, ticker: str = "SPY") -> dict:
    return {"request_id": request_id, "ticker": ticker, "limit": 2, "local_only": True}


def test_requests_beyond_the_in_flight_limit_are_answered_busy_at_once(live_server, gate, recorders):
    server = live_server(service_class=gate.service_class, limits=Limits(max_in_flight=2))
    client = recorders(server.url)
    client.send(protocol.GET_BATCH_DATA, batch("b1"))
    client.send(protocol.GET_BATCH_DATA, batch("b2"))
    client.send(protocol.GET_BATCH_DATA, batch("b3"))
    client.send(protocol.GET_DATA, data("d1"))  # even one the cache answers at once waits its turn
    refused = client.wait("b3", "d1")  # answered while b1 and b2 are still held at the gate
    assert not client.finals["b1"] and not client.finals["b2"]
    assert [event for event, _ in refused.values()] == [protocol.BATCH_ERROR, protocol.DATA_ERROR]
    for _, reply in refused.values():
        assert reply["code"] == "BUSY" and reply["details"] == {"in_flight": 2, "max": 2}
        assert "2 requests are already in flight" in reply["message"] and "wait for their replies" in reply["message"]
    gate.opened.set()
    answered = client.wait("b1", "b2")
    assert {event for event, _ in answered.values()} == {protocol.BATCH_RESPONSE}
    client.send(protocol.GET_DATA, data("d2"))  # the answers ended their time in flight
    assert client.wait("d2")["d2"][0] == protocol.DATA_RESPONSE


def test_events_beyond_the_rate_are_busy_and_cancel_is_never_metered(live_server, gate, recorders):
    server = live_server(service_class=gate.service_class, limits=Limits(events_per_second=0.001, event_burst=3))
    client = recorders(server.url)
    client.send(protocol.GET_BATCH_DATA, batch("c1"))
    client.send(protocol.GET_DATA, data("d1"))
    client.send(protocol.GET_DATA, data("d2"))
    client.send(protocol.GET_DATA, data("d3"))  # the bucket of 3 is empty now
    client.send("get_prices", {"request_id": "u1"})
    client.send(protocol.CANCEL, {"request_id": "c1"})
    client.send(protocol.GET_DATA, data("d4"))  # its reply says the cancel before it was handled
    replies = client.wait("d1", "d2", "d3", "u1", "d4")
    assert [replies[r][0] for r in ("d1", "d2")] == [protocol.DATA_RESPONSE] * 2
    for request_id in ("d3", "u1", "d4"):
        event, reply = replies[request_id]
        assert (event, reply["code"]) == (protocol.DATA_ERROR, "BUSY")
        assert "events per second" in reply["message"]
        assert reply["details"]["retry_after"] > 900  # a token per 1000 s
    gate.opened.set()
    event, reply = client.wait("c1")["c1"]
    assert (event, reply["code"]) == (protocol.BATCH_ERROR, "CANCELLED")


def test_requests_beyond_the_worker_queue_are_busy_and_cache_answers_go_on(live_server, gate, recorders):
    server = live_server(service_class=gate.service_class, workers=1, limits=Limits(max_queued=2))
    client = recorders(server.url)
    client.send(protocol.GET_BATCH_DATA, batch("b1"))
    gate.wait_entered()  # b1 holds the only worker
    for request_id in ("b2", "b3", "b4"):
        client.send(protocol.GET_BATCH_DATA, batch(request_id))
    client.send(protocol.GET_DATA, data("d1"))
    replies = client.wait("b4", "d1")
    event, reply = replies["b4"]
    assert (event, reply["code"], reply["details"]) == (protocol.BATCH_ERROR, "BUSY", {"queued": 2, "max": 2})
    assert "waiting for a worker" in reply["message"]
    assert replies["d1"][0] == protocol.DATA_RESPONSE
    gate.opened.set()
    assert {event for event, _ in client.wait("b1", "b2", "b3").values()} == {protocol.BATCH_RESPONSE}


def test_workers_take_turns_between_clients(live_server, gate, recorders):
    server = live_server(service_class=gate.service_class, workers=1)
    busy, other = recorders(server.url), recorders(server.url)
    busy.send(protocol.GET_BATCH_DATA, batch("a0", "SPY"))
    gate.wait_entered()
    for i in range(1, 5):
        busy.send(protocol.GET_BATCH_DATA, batch(f"a{i}", "SPY"))
    busy.send(protocol.GET_DATA, data("probe"))  # answered after the four are queued: a client's events keep order
    busy.wait("probe")
    other.send(protocol.GET_BATCH_DATA, batch("b0", "AAPL"))
    other.send(protocol.GET_DATA, data("probe"))
    other.wait("probe")
    gate.opened.set()
    busy.wait(*(f"a{i}" for i in range(5)))
    other.wait("b0")
    # The other client's batch ran right after the one busy's that was running and one more, not after all four.
    assert gate.calls == [("SPY",), ("SPY",), ("AAPL",), ("SPY",), ("SPY",), ("SPY",)]


def test_one_client_flooding_leaves_the_others_answers_whole_and_prompt(live_server, recorders):
    limits = Limits(max_in_flight=8, events_per_second=100, event_burst=50)
    server = live_server(limits=limits)
    flooder = recorders(server.url)
    asks = [
        (protocol.GET_DATA, lambda r: data(r, "BTC-USD") | {"resolution": "1h", "limit": 1000, "format": "arrow"}),
        (protocol.GET_DATA, lambda r: data(r, "SPY")),
        (protocol.GET_BATCH_DATA, lambda r: batch(r, "SPY", "AAPL", "GOOG", "INTC")),
    ]
    sent: list[str] = []
    stop_flood = threading.Event()

    def flood() -> None:
        while not stop_flood.is_set() and len(sent) < 5000:
            event, make = asks[len(sent) % len(asks)]
            sent.append(f"f{len(sent)}")
            flooder.send(event, make(sent[-1]))

    flooding = threading.Thread(target=flood)
    flood_started = time.monotonic()
    flooding.start()
    provider = DataProviderLocal(server.url, timeout=5, raise_errors=True)
    expected = {
        ("SPY", "1d"): sample("SPY", "1d"),
        ("BTC-USD", "1h"): sample("BTC-USD", "1h"),
        ("AAPL", "1d"): sample("AAPL", "1d"),
    }
    slowest = 0.0
    try:
        with provider:
            for i in range(30):
                ticker, resolution = list(expected)[i % len(expected)]
                started = time.monotonic()
                if i % 2:
                    frame = provider.get_data_socket(ticker, resolution, "max", limit=500, auto_disconnect=False)
                    assert_same_frame(frame, expected[ticker, resolution].iloc[-500:])
                else:
                    frames = provider.get_batch_data_socket(
                        ["SPY", "AAPL"], "1d", "max", limit=300, auto_disconnect=False, progress=False
                    )
                    for name, got in frames.items():
                        assert_same_frame(got, expected[name, "1d"].iloc[-300:])
                slowest = max(slowest, time.monotonic() - started)
    finally:
        stop_flood.set()
        flooding.join()
    assert slowest < 5  # no request came near its timeout (that would have raised anyway)
    replies = flooder.wait(*sent, timeout=60)  # and the flooder got exactly one final reply per request
    flood_seconds = time.monotonic() - flood_started  # the server metered its events within this time
    codes = [reply.get("code", "ok") for _, reply in replies.values()]
    assert set(codes) == {"ok", "BUSY"}
    # The meter let through at most a burst plus the rate for as long as the flood lasted (however fast it was).
    allowed = limits.event_burst + limits.events_per_second * (flood_seconds + 1)
    assert codes.count("ok") <= allowed, (len(sent), codes.count("ok"), allowed)


def _memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def test_a_client_that_stops_reading_is_dropped_and_costs_bounded_memory(tmp_path, sample_cache):
    data_dir = tmp_path / "data"
    shutil.copytree(sample_cache, data_dir)
    port, log = free_port(), tmp_path / "server.log"
    options = ["--data-dir", str(data_dir), "--offline", "--log-file", "", "--log-level", "WARNING"]
    process = start_server(port, *options, "--max-unsent-mb", "4", "--slow-client-seconds", "2", log=log)
    hourly = sample("BTC-USD", "1h")  # 20101 rows: about 1 MB per reply
    provider = DataProviderLocal(f"http://127.0.0.1:{port}", timeout=5, raise_errors=True)
    opened: list[websocket.WebSocket] = []
    try:
        provider.connect()
        assert_same_frame(provider.get_data_socket("BTC-USD", "1h", "max", auto_disconnect=False), hourly)
        before = _memory_mb(process.pid, "VmRSS")
        # A client that asks for 200 such replies (about 200 MB) and reads none of them.
        silent = websocket.create_connection(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
            sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)],
        )
        opened.append(silent)
        assert silent.recv().startswith("0")  # Engine.IO open
        silent.send("40")  # Socket.IO connect; its answers are the last thing it reads
        for i in range(200):
            request = {"request_id": f"s{i}", "ticker": "BTC-USD", "resolution": "1h", "period": "max"}
            silent.send("42" + json.dumps([protocol.GET_DATA, request | {"format": "arrow"}]))
        answered = 0
        deadline = time.monotonic() + 30
        while "disconnecting it" not in log.read_text() and time.monotonic() < deadline:
            started = time.monotonic()
            frame = provider.get_data_socket("SPY", "1d", "max", limit=100 + answered, auto_disconnect=False)
            assert time.monotonic() - started < 5
            assert_same_frame(frame, sample("SPY", "1d").iloc[-(100 + answered) :])
            answered += 1
        assert "left" in log.read_text() and answered > 0
        growth = _memory_mb(process.pid, "VmHWM") - before
        assert growth < 64, f"the server grew by {growth:.0f} MB for a client that reads nothing"
        silent.sock.settimeout(10)  # its connection was closed: what it has not read yet, then the end
        while silent.sock.recv(1 << 20):
            pass
        assert_same_frame(provider.get_data_socket("BTC-USD", "1h", "max", auto_disconnect=False), hourly)
    finally:
        for silent in opened:
            silent.shutdown()
        provider.disconnect()
        stop(process)


def test_limit_flags_default_to_the_documented_limits():
    args = parse_args([])
    default = Limits()
    assert (args.max_in_flight, args.max_events_per_second, args.event_burst, args.max_queued) == (
        default.max_in_flight,
        default.events_per_second,
        default.event_burst,
        default.max_queued,
    )
    assert args.max_unsent_mb * 2**20 == default.max_unsent_bytes
    assert args.slow_client_seconds == default.slow_client_seconds


@pytest.mark.parametrize("flag", ["--max-in-flight", "--max-queued", "--max-events-per-second", "--max-unsent-mb"])
def test_limit_flags_must_be_positive(flag, capsys):
    with pytest.raises(SystemExit):
        parse_args([flag, "0"])
    assert "must be above 0" in capsys.readouterr().err
