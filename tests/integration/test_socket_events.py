"""Every Socket.IO event, spoken by a raw python-socketio client as any other client would."""

from __future__ import annotations

import queue
import threading

import pandas as pd
import pytest

from dataprovider import __version__, protocol
from dataprovider.client.connection import _InOrderSocketIOClient as InOrderClient
from dataprovider.enums import DataResolution
from dataprovider.sources.sample import load_sample, sample_entries
from tests.conftest import Now
from tests.support.frames import assert_same_frame
from tests.support.yahoo_replay import YahooReplay

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
FINAL = {protocol.DATA_RESPONSE, protocol.DATA_ERROR, protocol.BATCH_RESPONSE, protocol.BATCH_ERROR}


class RawClient:
    """A python-socketio client that records every event it receives, per request_id.

    It is python-socketio's sync client with one change, the one our client makes too:
    messages are handled in order on the read loop. The stock client handles each
    packet on its own thread and can assemble a message's binary attachments out of order.
    """

    def __init__(self, url: str) -> None:
        self.events: queue.Queue = queue.Queue()
        self.sio = InOrderClient(reconnection=False)
        self.sio.on("*", lambda event, *args: self.events.put((event, args[0] if args else None)))
        self.sio.on(protocol.CONNECTION_RESPONSE, lambda p: self.events.put((protocol.CONNECTION_RESPONSE, p)))
        self.sio.connect(url, transports=["websocket"])

    def close(self) -> None:
        self.sio.disconnect()

    def ask(self, event: str, *args) -> list[tuple[str, dict]]:
        """Emit and collect every event up to the final reply (or any reply, for malformed ids)."""
        self.sio.emit(event, *args) if args else self.sio.emit(event)
        received = []
        while True:
            name, payload = self.events.get(timeout=10)
            if name == protocol.CONNECTION_RESPONSE:
                continue
            received.append((name, payload))
            if name in FINAL:
                return received


@pytest.fixture
def raw(live_server):
    server = live_server()
    client = RawClient(server.url)
    yield client
    client.close()


def sample(ticker: str, resolution: str) -> pd.DataFrame:
    return load_sample(next(e for e in sample_entries() if (e.ticker, e.resolution.value) == (ticker, resolution)))


def test_connection_response(live_server):
    client = RawClient(live_server().url)
    try:
        name, payload = client.events.get(timeout=10)
    finally:
        client.close()
    assert name == protocol.CONNECTION_RESPONSE
    assert payload["server_version"] == __version__
    assert payload["protocol_version"] == protocol.PROTOCOL_VERSION
    assert payload["cached_instruments"] == len(sample_entries())


@pytest.mark.parametrize("fmt", ["json", "arrow"])
def test_get_data_in_both_formats(raw, fmt):
    events = raw.ask(
        protocol.GET_DATA,
        {"request_id": "r1", "ticker": "SPY", "resolution": "1d", "period": "1mo", "local_only": True, "format": fmt},
    )
    (response,) = events  # a plain cache read needs no status message
    name, payload = response
    assert name == protocol.DATA_RESPONSE and payload["request_id"] == "r1"
    frame = protocol.decode_frame(payload["data"])
    expected = sample("SPY", "1d")
    expected = expected[expected.index > expected.index[-1] - pd.DateOffset(months=1)]
    pd.testing.assert_frame_equal(frame, expected)
    assert payload["rows"] == len(expected) and payload["ticker"] == "SPY"
    if fmt == "json":
        assert isinstance(payload["data"]["index"][0], str) and payload["data"]["columns"][0] == "Open"


def test_a_million_row_frame_arrives_whole_in_chunks(live_server):
    server = live_server(samples=False)
    index = pd.date_range("2020-01-01", periods=1_000_000, freq="min", tz="UTC", name="Datetime")
    frame = pd.DataFrame({"Open": 1.0, "High": 2.0, "Low": 0.5, "Close": range(len(index)), "Volume": 7}, index=index)
    frame["Close"] = frame["Close"].astype("float64")
    from dataprovider.engine.datasets import DatasetMeta
    from dataprovider.frames import normalize_frame

    frame = normalize_frame(frame, DataResolution.MINUTE_01, "UTC")
    server.store.write("BTC-USD", DataResolution.MINUTE_01, frame, DatasetMeta("UTC", "test"))
    client = RawClient(server.url)
    try:
        ((name, payload),) = client.ask(
            protocol.GET_DATA,
            {
                "request_id": "big",
                "ticker": "BTC-USD",
                "resolution": "1m",
                "period": "max",
                "local_only": True,
                "format": "arrow",
            },
        )
    finally:
        client.close()
    chunks = payload["data"]["chunks"]
    assert len(chunks) > 1 and all(len(c) <= protocol.CHUNK_BYTES for c in chunks)
    assert_same_frame(protocol.decode_frame(payload["data"]), frame)


def test_data_status_reports_a_download(live_server, make_yahoo_source):
    now = Now(pd.Timestamp("2022-02-01", tz="UTC"))
    server = live_server(make_yahoo_source(YahooReplay(NVDA), now), samples=False, clock=now)
    client = RawClient(server.url)
    try:
        events = client.ask(
            protocol.GET_DATA, {"request_id": "d", "ticker": "NVDA", "period": "1mo", "local_only": False}
        )
    finally:
        client.close()
    statuses = [p["status"] for name, p in events if name == protocol.DATA_STATUS]
    assert statuses == ["downloading"]
    assert events[-1][0] == protocol.DATA_RESPONSE and events[-1][1]["source"] == "yahoo"
    client = RawClient(server.url)
    try:  # asked again at once: the source is consulted, the cache is fresh
        events = client.ask(
            protocol.GET_DATA, {"request_id": "e", "ticker": "NVDA", "period": "1mo", "local_only": False}
        )
    finally:
        client.close()
    assert [p["status"] for name, p in events if name == protocol.DATA_STATUS] == ["cached"]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"request_id": "e", "ticker": "NOPE", "local_only": True}, "NOT_CACHED", None),
        ({"request_id": "e", "ticker": "../../etc/passwd"}, "INVALID_TICKER", "ticker"),
        ({"request_id": "e", "ticker": "SPY", "resolution": "3h"}, "INVALID_RESOLUTION", "resolution"),
        ({"request_id": "e", "ticker": "SPY", "period": "7y"}, "INVALID_PERIOD", "period"),
        ({"request_id": "e", "ticker": "SPY", "limit": -1}, "INVALID_LIMIT", "limit"),
        (
            {"request_id": "e", "ticker": "SPY", "time_start": "2016-01-01", "time_end": "2015-01-01"},
            "INVALID_TIME_RANGE",
            "time_start",
        ),
        ({"request_id": "e", "ticker": "SPY", "format": "pickle"}, "INVALID_FORMAT", "format"),
        ({"request_id": "e", "ticker": "SPY", "tickr": "SPY"}, "INVALID_PAYLOAD", "tickr"),
    ],
)
def test_data_errors_carry_code_field_and_request_id(raw, payload, code, field):
    name, reply = raw.ask(protocol.GET_DATA, payload)[-1]
    assert name == protocol.DATA_ERROR
    assert (reply["request_id"], reply["code"], reply["field"]) == ("e", code, field)
    assert reply["message"]


@pytest.mark.parametrize("payload", [None, "SPY", ["SPY"], 42, b"\x00\x01"])
def test_payloads_that_are_not_objects(raw, payload):
    name, reply = raw.ask(protocol.GET_DATA, payload)[-1]
    assert name == protocol.DATA_ERROR and reply["code"] == "INVALID_PAYLOAD"


def test_missing_payload_and_extra_arguments(raw):
    assert raw.ask(protocol.GET_DATA)[-1][1]["code"] == "INVALID_PAYLOAD"
    name, reply = raw.ask(protocol.GET_DATA, ({"request_id": "x", "ticker": "SPY"}, "extra"))[-1]
    assert (name, reply["code"], reply["request_id"]) == (protocol.DATA_ERROR, "INVALID_PAYLOAD", "x")


def test_unknown_event(raw):
    raw.sio.emit("get_dat", {"request_id": "u", "ticker": "SPY"})
    name, reply = raw.events.get(timeout=10)
    while name == protocol.CONNECTION_RESPONSE:
        name, reply = raw.events.get(timeout=10)
    assert (name, reply["code"], reply["request_id"]) == (protocol.DATA_ERROR, "UNKNOWN_EVENT", "u")


def test_batch_progress_partial_failure_and_response(raw):
    events = raw.ask(
        protocol.GET_BATCH_DATA,
        {"request_id": "b", "tickers": ["SPY", "NOPE", "a/b", "AAPL", "SPY"], "period": "1mo", "local_only": True},
    )
    progress = [item for name, p in events if name == protocol.BATCH_PROGRESS for item in p["items"]]
    name, reply = events[-1]
    assert name == protocol.BATCH_RESPONSE and reply["request_id"] == "b"
    assert sorted(p["index"] for p in progress) == [1, 2, 3, 4]  # SPY asked twice, answered once
    assert {p["ticker"]: p["status"] for p in progress} == {"SPY": "ok", "NOPE": "error", "a/b": "error", "AAPL": "ok"}
    assert all(p["total"] == 4 and p["progress"] == f"{p['index']}/4" for p in progress)
    assert set(reply["results"]) == {"SPY", "AAPL"}
    assert reply["errors"]["NOPE"]["code"] == "NOT_CACHED" and reply["errors"]["a/b"]["code"] == "INVALID_TICKER"
    assert (reply["total"], reply["succeeded"], reply["failed"]) == (4, 2, 2)
    spy = protocol.decode_frame(reply["results"]["SPY"]["data"])
    assert spy.index[-1] == sample("SPY", "1d").index[-1]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"request_id": "b", "tickers": "SPY"}, "INVALID_PAYLOAD"),
        ({"request_id": "b", "tickers": []}, "INVALID_PAYLOAD"),
        ({"request_id": "b", "tickers": ["SPY"] * (protocol.MAX_BATCH_TICKERS + 1)}, "BATCH_TOO_LARGE"),
        ({"request_id": "b", "tickers": ["SPY"], "resolution": "2d"}, "INVALID_RESOLUTION"),
    ],
)
def test_batch_errors(raw, payload, code):
    name, reply = raw.ask(protocol.GET_BATCH_DATA, payload)[-1]
    assert (name, reply["code"], reply["request_id"]) == (protocol.BATCH_ERROR, code, "b")


def test_many_requests_in_flight_on_one_connection(raw):
    """Fifty requests sent at once on one connection: each gets exactly its own answer."""
    tickers = ["SPY", "AAPL", "GOOG", "INTC", "BTC-USD"]
    limits = {f"m{i}": (tickers[i % 5], 10 + i) for i in range(50)}
    for request_id, (ticker, limit) in limits.items():
        raw.sio.emit(
            protocol.GET_DATA,
            {
                "request_id": request_id,
                "ticker": ticker,
                "limit": limit,
                "period": "max",
                "local_only": True,
                "format": "arrow",
            },
        )
    answers: dict[str, dict] = {}
    while len(answers) < 50:
        name, payload = raw.events.get(timeout=10)
        if name in FINAL:
            assert payload["request_id"] not in answers
            answers[payload["request_id"]] = payload
    for request_id, payload in answers.items():
        ticker, limit = limits[request_id]
        frame = protocol.decode_frame(payload["data"])
        pd.testing.assert_frame_equal(frame, sample(ticker, "1d").iloc[-limit:])


def test_a_failing_handler_still_answers(live_server, monkeypatch):
    server = live_server()

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(server.service, "cached_answer", broken)
    client = RawClient(server.url)
    try:
        name, reply = client.ask(protocol.GET_DATA, {"request_id": "i", "ticker": "SPY"})[-1]
    finally:
        client.close()
    assert (name, reply["code"], reply["request_id"]) == (protocol.DATA_ERROR, "INTERNAL", "i")
    assert "bug" not in reply["message"]  # the traceback stays in the server log


def test_other_clients_are_served_while_one_waits(live_server):
    server = live_server()
    clients = [RawClient(server.url) for _ in range(3)]
    results = []

    def ask(client, i):
        results.append(
            client.ask(protocol.GET_DATA, {"request_id": f"c{i}", "ticker": "AAPL", "local_only": True})[-1][0]
        )

    threads = [threading.Thread(target=ask, args=(c, i)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    assert results == [protocol.DATA_RESPONSE] * 3


def test_generated_request_id_is_the_same_in_status_and_response(raw):
    events = raw.ask(protocol.GET_DATA, {"ticker": "SPY", "local_only": True, "limit": 1})
    ids = {payload["request_id"] for _, payload in events}
    assert len(ids) == 1 and None not in ids


def test_batch_entries_that_are_not_strings_keep_their_own_key(raw):
    events = raw.ask(
        protocol.GET_BATCH_DATA,
        {"request_id": "k", "tickers": ["SPY", 123, "123", None], "local_only": True, "limit": 1},
    )
    progress = [item for name, p in events if name == protocol.BATCH_PROGRESS for item in p["items"]]
    reply = events[-1][1]
    assert sorted(p["index"] for p in progress) == [1, 2, 3, 4] and reply["total"] == 4
    assert set(reply["errors"]) == {"tickers[1]", "123", "tickers[3]"}
    assert reply["errors"]["tickers[1]"]["code"] == "INVALID_TICKER"
    assert reply["errors"]["123"]["code"] == "NOT_CACHED"


def test_a_batch_of_hundreds_of_binary_frames_arrives_whole(live_server):
    """Hundreds of attachments in one reply: each frame must land with its own ticker."""
    from dataprovider.engine.datasets import DatasetMeta
    from dataprovider.frames import normalize_frame

    server = live_server(samples=False)
    index = pd.bdate_range("2024-01-01", periods=10, tz="America/New_York", name="Date")
    tickers = [f"T{i:03d}" for i in range(300)]
    for i, ticker in enumerate(tickers):
        frame = pd.DataFrame({"Open": i, "High": i, "Low": i, "Close": float(i), "Volume": i}, index=index)
        frame = normalize_frame(frame, DataResolution.DAY_01, "America/New_York")
        server.store.write(ticker, DataResolution.DAY_01, frame, DatasetMeta("America/New_York", "test"))
    seen = []
    frames = server.client().get_batch_data_socket(
        tickers, period="max", local_only=True, progress=False, progress_callback=seen.append
    )
    assert list(frames) == tickers
    assert all(frames[t]["Close"].tolist() == [float(i)] * 10 for i, t in enumerate(tickers))
    assert [p["index"] for p in seen] == list(range(1, 301))
    # Progress of tickers that finish close together travels in one event, not 300.
    raw = RawClient(server.url)
    try:
        events = raw.ask(protocol.GET_BATCH_DATA, {"request_id": "c", "tickers": tickers, "local_only": True})
    finally:
        raw.close()
    progress = [p for name, p in events if name == protocol.BATCH_PROGRESS]
    assert len(progress) < len(tickers) / 10
    assert [item["index"] for p in progress for item in p["items"]] == list(range(1, 301))
    assert all(p["index"] == p["items"][-1]["index"] for p in progress)


def test_replies_to_a_request_without_id_all_carry_the_generated_one(raw):
    events = raw.ask(protocol.GET_DATA, {"ticker": "NOPE", "local_only": True})
    ((name, reply),) = events
    assert name == protocol.DATA_ERROR and reply["code"] == "NOT_CACHED"
    assert isinstance(reply["request_id"], str) and len(reply["request_id"]) == 32


def test_a_batch_where_every_ticker_fails_still_sends_a_well_formed_stream(raw):
    events = raw.ask(
        protocol.GET_BATCH_DATA, {"request_id": "f", "tickers": ["NOPE"], "local_only": True, "format": "arrow"}
    )
    reply = events[-1][1]
    assert reply["results"] == {} and set(reply["errors"]) == {"NOPE"}
    frame = protocol.decode_frame(reply["data"])
    assert frame.empty and list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert frame.index.name == "Date"
