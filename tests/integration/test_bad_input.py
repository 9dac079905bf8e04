"""Bad input over both transports, sent to a real server: exactly one clear error each, never a hang or a 5xx.

Every case checks the error's code, the field at fault and that the message
says what to send instead; then the same connection asks a normal question,
which must be the next thing answered (so no second reply to the bad request
arrived, and the server goes on serving).
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from urllib.parse import urlsplit

import pytest
import requests

from dataprovider import protocol
from dataprovider.enums import DataPeriod, DataResolution
from tests.integration.test_socket_events import RawClient

RESOLUTIONS = ", ".join(DataResolution.values())
PERIODS = ", ".join(DataPeriod.values())
LIMIT_RANGE = f"from 1 to {protocol.MAX_LIMIT}"
TIME_FORMAT = "'YYYY-MM-DD'"
TICKER_RULE = "Yahoo Finance symbol"
# Longest error message any case may get back (nothing sent is echoed in full).
MESSAGE_BOUND = 600


@pytest.fixture
def server(live_server):
    return live_server()


@pytest.fixture
def raw(server):
    client = RawClient(server.url)
    yield client
    client.close()


def assert_still_serving(raw: RawClient) -> None:
    """The next reply on this connection is the answer to a normal request."""
    events = raw.ask(protocol.GET_DATA, {"request_id": "ok", "ticker": "SPY", "limit": 2, "local_only": True})
    assert [(name, payload["request_id"], payload["rows"]) for name, payload in events] == [
        (protocol.DATA_RESPONSE, "ok", 2)
    ]


def assert_error(error: dict, code: str, field: str | None, fix: str) -> None:
    assert (error["code"], error["field"]) == (code, field)
    assert fix in error["message"] and len(error["message"]) <= MESSAGE_BOUND


# ----------------------------------------------------------------------------- Socket.IO
DATA_CASES = [  # (case, fields added to {"request_id": "e", "ticker": "SPY"}, code, field, what the message says)
    ("ticker missing", {"ticker": None}, "INVALID_TICKER", "ticker", "ticker is missing"),
    ("ticker a number", {"ticker": 5}, "INVALID_TICKER", "ticker", "must be a string"),
    ("ticker a path", {"ticker": "../../etc/passwd"}, "INVALID_TICKER", "ticker", TICKER_RULE),
    ("ticker with a slash", {"ticker": "a/b"}, "INVALID_TICKER", "ticker", TICKER_RULE),
    ("ticker with a backslash", {"ticker": "a\\b"}, "INVALID_TICKER", "ticker", TICKER_RULE),
    ("ticker empty", {"ticker": ""}, "INVALID_TICKER", "ticker", "is empty"),
    ("ticker padded", {"ticker": " SPY"}, "INVALID_TICKER", "ticker", "whitespace"),
    ("ticker with NUL", {"ticker": "SP\x00Y"}, "INVALID_TICKER", "ticker", TICKER_RULE),
    ("ticker with a tab", {"ticker": "SP\tY"}, "INVALID_TICKER", "ticker", TICKER_RULE),
    ("ticker non-ASCII", {"ticker": "SPÝ"}, "INVALID_TICKER", "ticker", "non-ASCII"),
    ("ticker too long", {"ticker": "A" * 33}, "INVALID_TICKER", "ticker", "longer than 32"),
    ("ticker of 100000 characters", {"ticker": "A" * 100_000}, "INVALID_TICKER", "ticker", "(100000 characters)"),
    ("unknown resolution", {"resolution": "3h"}, "INVALID_RESOLUTION", "resolution", RESOLUTIONS),
    ("resolution in capitals", {"resolution": "1D"}, "INVALID_RESOLUTION", "resolution", RESOLUTIONS),
    ("resolution padded", {"resolution": " 1d"}, "INVALID_RESOLUTION", "resolution", RESOLUTIONS),
    ("resolution null", {"resolution": None}, "INVALID_RESOLUTION", "resolution", RESOLUTIONS),
    ("resolution a list", {"resolution": ["1d"]}, "INVALID_RESOLUTION", "resolution", RESOLUTIONS),
    ("unknown period", {"period": "7y"}, "INVALID_PERIOD", "period", PERIODS),
    ("date unparsable", {"time_start": "2015-13-45"}, "INVALID_TIME_RANGE", "time_start", TIME_FORMAT),
    (
        "date that does not exist",
        {"time_start": "2015-02-30"},
        "INVALID_TIME_RANGE",
        "time_start",
        "day is out of range",
    ),
    ("date in words", {"time_start": "Jan 5 2015"}, "INVALID_TIME_RANGE", "time_start", TIME_FORMAT),
    ("date month first", {"time_start": "01/02/2015"}, "INVALID_TIME_RANGE", "time_start", TIME_FORMAT),
    ("date with NUL", {"time_start": "2015-01-01\x00"}, "INVALID_TIME_RANGE", "time_start", TIME_FORMAT),
    ("date padded", {"time_end": " 2015-01-01"}, "INVALID_TIME_RANGE", "time_end", TIME_FORMAT),
    ("date 'now'", {"time_end": "now"}, "INVALID_TIME_RANGE", "time_end", TIME_FORMAT),
    ("date a number", {"time_start": 20150101}, "INVALID_TIME_RANGE", "time_start", "must be a string"),
    ("date a float", {"time_start": 1.5e9}, "INVALID_TIME_RANGE", "time_start", "must be a string"),
    ("date a boolean", {"time_start": True}, "INVALID_TIME_RANGE", "time_start", "must be a string"),
    ("date before 1900", {"time_start": "1899-12-31"}, "INVALID_TIME_RANGE", "time_start", "1900 to 2199"),
    ("date after 2199", {"time_end": "2200-01-01"}, "INVALID_TIME_RANGE", "time_end", "1900 to 2199"),
    ("date in year 1", {"time_start": "0001-01-01"}, "INVALID_TIME_RANGE", "time_start", "1900 to 2199"),
    ("hour 24", {"time_start": "2015-01-01T24:00"}, "INVALID_TIME_RANGE", "time_start", "hour must be in 0..23"),
    (
        "dates inverted",
        {"time_start": "2016-01-01", "time_end": "2015-01-01"},
        "INVALID_TIME_RANGE",
        "time_start",
        "swap them",
    ),
    ("limit negative", {"limit": -1}, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit zero", {"limit": 0}, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit too large", {"limit": protocol.MAX_LIMIT + 1}, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit of 101 digits", {"limit": 10**100}, "INVALID_LIMIT", "limit", "got 1e+100"),
    ("limit fractional", {"limit": 1.5}, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit NaN", {"limit": float("nan")}, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit infinite", {"limit": float("inf")}, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit a boolean", {"limit": True}, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit a string", {"limit": "5"}, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("local_only 1", {"local_only": 1}, "INVALID_PAYLOAD", "local_only", "true or false"),
    ("local_only 'true'", {"local_only": "true"}, "INVALID_PAYLOAD", "local_only", "true or false"),
    ("local_only null", {"local_only": None}, "INVALID_PAYLOAD", "local_only", "true or false"),
    ("unknown format", {"format": "pickle"}, "INVALID_FORMAT", "format", "json, arrow"),
    ("csv over Socket.IO", {"format": "csv"}, "INVALID_FORMAT", "format", "json, arrow"),
    ("unknown field", {"tickr": "SPY"}, "INVALID_PAYLOAD", "tickr", "the allowed fields are"),
]


@pytest.mark.parametrize(
    ("fields", "code", "field", "fix"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES]
)
def test_get_data_field_errors(raw, fields, code, field, fix):
    events = raw.ask(protocol.GET_DATA, {"request_id": "e", "ticker": "SPY", **fields})
    assert [name for name, _ in events] == [protocol.DATA_ERROR]
    error = events[0][1]
    assert error["request_id"] == "e"
    assert_error(error, code, field, fix)
    assert_still_serving(raw)


@pytest.mark.parametrize(
    "request_id",
    [5, "", "x" * 129, "has space", "line\nbreak", "é"],
    ids=["number", "empty", "long", "space", "newline", "non-ASCII"],
)
def test_unusable_request_ids_are_refused_and_not_echoed(raw, request_id):
    ((name, error),) = raw.ask(protocol.GET_DATA, {"request_id": request_id, "ticker": "SPY"})
    assert name == protocol.DATA_ERROR and error["request_id"] is None
    assert_error(error, "INVALID_PAYLOAD", "request_id", "visible ASCII")
    assert_still_serving(raw)


NOT_OBJECTS = [("null", None), ("string", "SPY"), ("list", ["SPY"]), ("number", 42), ("binary", b"\x00\x01")]


@pytest.mark.parametrize("event", [protocol.GET_DATA, protocol.GET_BATCH_DATA])
@pytest.mark.parametrize("payload", [p for _, p in NOT_OBJECTS], ids=[name for name, _ in NOT_OBJECTS])
def test_payloads_that_are_not_objects(raw, event, payload):
    ((name, error),) = raw.ask(event, payload)
    assert name == (protocol.DATA_ERROR if event == protocol.GET_DATA else protocol.BATCH_ERROR)
    # python-socketio sends an event with a null payload as one without arguments
    fix = "exactly one payload" if payload is None else "one JSON object"
    assert_error(error, "INVALID_PAYLOAD", None, fix)
    assert_still_serving(raw)


@pytest.mark.parametrize("event", [protocol.GET_DATA, protocol.GET_BATCH_DATA])
@pytest.mark.parametrize(
    "args", [(), ({"request_id": "x", "ticker": "SPY"}, "extra"), ({}, 1, 2)], ids=["none", "two", "three"]
)
def test_missing_payload_and_extra_arguments(raw, event, args):
    ((_, error),) = raw.ask(event, args) if args else raw.ask(event)
    assert_error(error, "INVALID_PAYLOAD", None, f"got {len(args)} arguments")
    assert error["request_id"] == ("x" if len(args) == 2 else None)
    assert_still_serving(raw)


def test_unknown_event(raw):
    raw.sio.emit("get_prices", {"request_id": "u", "ticker": "SPY"})
    name, error = raw.events.get(timeout=10)
    while name == protocol.CONNECTION_RESPONSE:
        name, error = raw.events.get(timeout=10)
    assert (name, error["request_id"]) == (protocol.DATA_ERROR, "u")
    assert_error(error, "UNKNOWN_EVENT", None, "'get_data', 'get_batch_data', 'cancel', 'subscribe' and 'unsubscribe'")
    assert_still_serving(raw)


BATCH_CASES = [  # (case, fields added to {"request_id": "b"}, code, field, what the message says)
    ("tickers missing", {}, "INVALID_PAYLOAD", "tickers", "tickers is missing"),
    ("tickers a string", {"tickers": "SPY,AAPL"}, "INVALID_PAYLOAD", "tickers", "list of symbols"),
    ("tickers an object", {"tickers": {"SPY": 1}}, "INVALID_PAYLOAD", "tickers", "list of symbols"),
    ("tickers empty", {"tickers": []}, "INVALID_PAYLOAD", "tickers", "at least one"),
    (
        "tickers over the maximum",
        {"tickers": ["SPY"] * (protocol.MAX_BATCH_TICKERS + 1)},
        "BATCH_TOO_LARGE",
        "tickers",
        f"at most {protocol.MAX_BATCH_TICKERS}",
    ),
    ("shared field invalid", {"tickers": ["SPY"], "resolution": "2d"}, "INVALID_RESOLUTION", "resolution", RESOLUTIONS),
    ("unknown field", {"tickers": ["SPY"], "ticker": "SPY"}, "INVALID_PAYLOAD", "ticker", "the allowed fields are"),
]


@pytest.mark.parametrize(
    ("fields", "code", "field", "fix"), [c[1:] for c in BATCH_CASES], ids=[c[0] for c in BATCH_CASES]
)
def test_get_batch_data_errors(raw, fields, code, field, fix):
    events = raw.ask(protocol.GET_BATCH_DATA, {"request_id": "b", **fields})
    assert [name for name, _ in events] == [protocol.BATCH_ERROR]
    assert events[0][1]["request_id"] == "b"
    assert_error(events[0][1], code, field, fix)
    assert_still_serving(raw)


def test_a_batch_of_the_maximum_size_of_duplicates_is_answered_once(raw):
    tickers = ["SPY", "spy"] * (protocol.MAX_BATCH_TICKERS // 2)
    reply = raw.ask(protocol.GET_BATCH_DATA, {"request_id": "d", "tickers": tickers, "limit": 1, "local_only": True})[
        -1
    ]
    assert reply[0] == protocol.BATCH_RESPONSE
    assert (reply[1]["total"], list(reply[1]["results"]), reply[1]["errors"]) == (1, ["SPY"], {})


def test_invalid_tickers_in_a_batch_do_not_stop_the_valid_ones(raw):
    tickers = ["SPY", "a/b", "", " AAPL", "SP\x00Y", "É", 5, None, ["SPY"], "AAPL"]
    events = raw.ask(protocol.GET_BATCH_DATA, {"request_id": "m", "tickers": tickers, "limit": 1, "local_only": True})
    name, reply = events[-1]
    assert name == protocol.BATCH_RESPONSE and list(reply["results"]) == ["SPY", "AAPL"]
    invalid = {"a/b", "", " AAPL", "SP\x00Y", "É", "tickers[6]", "tickers[7]", "tickers[8]"}
    assert set(reply["errors"]) == invalid
    for error in reply["errors"].values():
        assert_error(error, "INVALID_TICKER", "tickers[]", TICKER_RULE)
    assert (reply["total"], reply["succeeded"], reply["failed"]) == (10, 2, 8)


def test_a_message_over_the_size_limit_closes_only_that_connection(server, raw):
    """Engine.IO refuses a message over MAX_MESSAGE_BYTES by closing the connection; others are served."""
    big = RawClient(server.url)
    closed = threading.Event()
    big.sio.on("disconnect", lambda *args: closed.set())
    try:
        big.sio.emit(protocol.GET_DATA, {"request_id": "big", "ticker": "SPY", "pad": "x" * protocol.MAX_MESSAGE_BYTES})
        assert closed.wait(timeout=10)
    finally:
        big.close()
        big.sio.eio.ws.shutdown()  # python-engineio's client leaves its socket open when the server drops it
    assert_still_serving(raw)
    again = RawClient(server.url)  # the client may reconnect and carry on
    try:
        assert_still_serving(again)
    finally:
        again.close()


def test_a_malformed_packet_is_dropped_and_the_connection_goes_on(server):
    """Text that is no Socket.IO event cannot be attributed to a request: logged and dropped, nothing else."""
    import websocket  # websocket-client, the Python client's own transport

    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=10)
    try:
        assert ws.recv().startswith("0")  # Engine.IO open
        ws.send("40")  # Socket.IO connect
        replies = [ws.recv(), ws.recv()]
        assert any(r.startswith("40") for r in replies) and any("connection_response" in r for r in replies)
        for packet in ('42["get_data",{"ticker":', '42{"a":1}', "42[]", '42["get_data",' + "[" * 5000):
            ws.send(packet)
        ws.send('42["get_data",{"request_id":"after","ticker":"SPY","limit":1,"local_only":true}]')
        reply = json.loads(ws.recv()[2:])
    finally:
        ws.close()
    assert reply[0] == protocol.DATA_RESPONSE and reply[1]["request_id"] == "after" and reply[1]["rows"] == 1


# ----------------------------------------------------------------------------- REST
def get_raw(url: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
    """GET ``target`` exactly as written (requests would re-encode a bad escape): status, content type, body."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        connection.close()


REST_CASES = [  # (case, target, status, code, field, what the message says)
    ("invalid escape in the path", "/api/data/%ZZ", 400, "INVALID_TICKER", "ticker", TICKER_RULE),
    ("invalid UTF-8 in the path", "/api/data/%FF", 400, "INVALID_TICKER", "ticker", "non-ASCII"),
    ("path traversal", "/api/data/..%2F..%2Fetc%2Fpasswd", 400, "INVALID_TICKER", "ticker", TICKER_RULE),
    ("NUL in the ticker", "/api/data/SPY%00", 400, "INVALID_TICKER", "ticker", TICKER_RULE),
    ("no ticker", "/api/data/", 400, "INVALID_TICKER", "ticker", "is empty"),
    ("invalid escape in a value", "/api/data/SPY?start=%ZZ", 400, "INVALID_PAYLOAD", "start", "%25"),
    ("invalid UTF-8 in a value", "/api/data/SPY?start=%FF", 400, "INVALID_PAYLOAD", "start", "UTF-8"),
    ("invalid escape in a name", "/api/data/SPY?lim%ZZit=1", 400, "INVALID_PAYLOAD", "lim%ZZit", "%25"),
    ("a lone percent sign", "/api/data/SPY?limit=5%", 400, "INVALID_PAYLOAD", "limit", "%25"),
    ("repeated parameter", "/api/data/SPY?limit=1&limit=1", 400, "INVALID_PAYLOAD", "limit", "give it once"),
    (
        "both aliases",
        "/api/data/SPY?start=2015-01-01&time_start=2015-01-01",
        400,
        "INVALID_PAYLOAD",
        "time_start",
        "only one",
    ),
    (
        "request_id is no parameter",
        "/api/data/SPY?request_id=x",
        400,
        "INVALID_PAYLOAD",
        "request_id",
        "allowed parameters",
    ),
    ("unknown parameter", "/api/data/SPY?tickr=SPY", 400, "INVALID_PAYLOAD", "tickr", "allowed parameters"),
    ("limit padded", "/api/data/SPY?limit=%205", 400, "INVALID_LIMIT", "limit", "written in digits"),
    ("limit with '_'", "/api/data/SPY?limit=5_0", 400, "INVALID_LIMIT", "limit", "written in digits"),
    ("limit in full-width digits", "/api/data/SPY?limit=%EF%BC%95", 400, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit NaN", "/api/data/SPY?limit=nan", 400, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit 1e400", "/api/data/SPY?limit=1e400", 400, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit of 5000 digits", "/api/data/SPY?limit=" + "9" * 5000, 400, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    ("limit zero", "/api/data/SPY?limit=0", 400, "INVALID_LIMIT", "limit", LIMIT_RANGE),
    (
        "local_only unknown word",
        "/api/data/SPY?local_only=maybe",
        400,
        "INVALID_PAYLOAD",
        "local_only",
        "true or false",
    ),
    ("local_only without value", "/api/data/SPY?local_only", 400, "INVALID_PAYLOAD", "local_only", "true or false"),
    ("resolution padded", "/api/data/SPY?resolution=%201d", 400, "INVALID_RESOLUTION", "resolution", RESOLUTIONS),
    ("period unknown", "/api/data/SPY?period=7y", 400, "INVALID_PERIOD", "period", PERIODS),
    ("'+' not encoded", "/api/data/SPY?start=2015-01-01T10:00+05:00", 400, "INVALID_TIME_RANGE", "time_start", "%2B"),
    ("date unparsable", "/api/data/SPY?end=2015-13-45", 400, "INVALID_TIME_RANGE", "time_end", TIME_FORMAT),
    ("huge value", "/api/data/SPY?period=" + "x" * 60_000, 400, "INVALID_PERIOD", "period", "(60000 characters)"),
    ("unknown format", "/api/data/SPY?format=xml", 400, "INVALID_FORMAT", "format", "json, csv, arrow"),
    ("URL of 100 KB", "/api/data/SPY?period=" + "x" * 100_000, 414, "REQUEST_TOO_LARGE", None, "65536 bytes"),
]


@pytest.mark.parametrize(
    ("target", "status", "code", "field", "fix"), [c[1:] for c in REST_CASES], ids=[c[0] for c in REST_CASES]
)
def test_rest_data_errors(server, target, status, code, field, fix):
    got_status, content_type, body = get_raw(server.url, target)
    assert (got_status, content_type) == (status, "application/json")
    assert_error(body["error"], code, field, fix)
    if status == 400:  # answered by the app: the id it gave the request
        assert isinstance(body["error"]["request_id"], str)
    assert requests.get(f"{server.url}/api/data/SPY", params={"limit": 1, "local_only": 1}, timeout=10).ok


def test_a_huge_header_is_a_json_error(server):
    status, content_type, body = get_raw(server.url, "/api/health", headers={"X-Big": "a" * 70_000})
    assert (status, content_type) == (431, "application/json")
    assert_error(body["error"], "REQUEST_TOO_LARGE", None, "65536 bytes")


JSON = {"Content-Type": "application/json"}
BATCH_BODIES = [  # (case, requests.post keywords, status, code, field, what the message says)
    ("invalid JSON", {"data": b'{"tickers": [', "headers": JSON}, 400, "INVALID_PAYLOAD", None, "not valid JSON"),
    ("invalid UTF-8", {"data": b'{"tickers": ["\xff"]}', "headers": JSON}, 400, "INVALID_PAYLOAD", None, "UTF-8"),
    ("nested too deeply", {"data": b"[" * 100_000, "headers": JSON}, 400, "INVALID_PAYLOAD", None, "nested too deeply"),
    ("a JSON array", {"json": ["SPY"]}, 400, "INVALID_PAYLOAD", None, "one JSON object"),
    ("a JSON string", {"json": "SPY"}, 400, "INVALID_PAYLOAD", None, "one JSON object"),
    ("JSON null", {"data": b"null", "headers": JSON}, 400, "INVALID_PAYLOAD", None, "one JSON object"),
    (
        "text/plain",
        {"data": b'{"tickers": ["SPY"]}', "headers": {"Content-Type": "text/plain"}},
        415,
        "INVALID_PAYLOAD",
        None,
        "application/json",
    ),
    ("a form", {"data": {"tickers": "SPY"}}, 415, "INVALID_PAYLOAD", None, "application/json"),
    (
        "over the size limit",
        {"json": {"tickers": ["SPY"], "request_id": "x" * protocol.MAX_MESSAGE_BYTES}},
        413,
        "REQUEST_TOO_LARGE",
        None,
        f"larger than {protocol.MAX_MESSAGE_BYTES} bytes",
    ),
    ("tickers a string", {"json": {"tickers": "SPY"}}, 400, "INVALID_PAYLOAD", "tickers", "list of symbols"),
    ("tickers empty", {"json": {"tickers": []}}, 400, "INVALID_PAYLOAD", "tickers", "at least one"),
    ("too many tickers", {"json": {"tickers": ["SPY"] * 1001}}, 400, "BATCH_TOO_LARGE", "tickers", "at most 1000"),
    (
        "local_only 1",
        {"json": {"tickers": ["SPY"], "local_only": 1}},
        400,
        "INVALID_PAYLOAD",
        "local_only",
        "true or false",
    ),
    (
        "limit of 5000 digits",
        {"data": b'{"tickers":["SPY"],"limit":' + b"9" * 5000 + b"}", "headers": JSON},
        400,
        "INVALID_LIMIT",
        "limit",
        LIMIT_RANGE,
    ),
    (
        "unknown field",
        {"json": {"tickers": ["SPY"], "foo": 1}},
        400,
        "INVALID_PAYLOAD",
        "foo",
        "the allowed fields are",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "field", "fix"), [c[1:] for c in BATCH_BODIES], ids=[c[0] for c in BATCH_BODIES]
)
def test_rest_batch_errors(server, kwargs, status, code, field, fix):
    response = requests.post(f"{server.url}/api/batch", timeout=10, **kwargs)
    assert (response.status_code, response.headers["Content-Type"]) == (status, "application/json")
    assert_error(response.json()["error"], code, field, fix)
    assert requests.post(f"{server.url}/api/batch", json={"tickers": ["SPY"], "local_only": True}, timeout=10).ok


def test_a_batch_body_without_content_type_is_read_as_json(server):
    body = json.dumps({"request_id": "n", "tickers": ["SPY"], "limit": 1, "local_only": True}).encode()
    reply = requests.post(f"{server.url}/api/batch", data=body, timeout=10).json()
    assert (reply["request_id"], list(reply["results"])) == ("n", ["SPY"])


# ----------------------------------------------------------------------------- handler bugs
def broken(*args, **kwargs):
    raise RuntimeError("secret detail of a bug")


@pytest.mark.parametrize("method", ["get_bars", "get_batch"])
def test_a_handler_bug_is_internal_with_the_request_id_and_a_logged_traceback(server, monkeypatch, caplog, method):
    monkeypatch.setattr(server.service, method, broken)
    if method == "get_bars":
        response = requests.get(f"{server.url}/api/data/SPY", params={"local_only": "true"}, timeout=10)
    else:
        response = requests.post(
            f"{server.url}/api/batch", json={"request_id": "bug-1", "tickers": ["SPY"]}, timeout=10
        )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "INTERNAL" and "secret" not in response.text
    assert error["request_id"] == error["details"]["request_id"] and error["request_id"] in error["message"]
    if method == "get_batch":
        assert error["request_id"] == "bug-1"
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert error["request_id"] in record.getMessage() and "secret detail of a bug" in str(record.exc_info[1])


def test_a_socket_handler_bug_is_internal_with_the_request_id_and_a_logged_traceback(server, raw, monkeypatch, caplog):
    monkeypatch.setattr(server.service, "cached_answer", broken)
    ((name, error),) = raw.ask(protocol.GET_DATA, {"request_id": "bug-2", "ticker": "SPY"})
    assert (name, error["code"], error["request_id"], error["details"]) == (
        protocol.DATA_ERROR,
        "INTERNAL",
        "bug-2",
        {"request_id": "bug-2"},
    )
    assert "secret" not in error["message"]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert "bug-2" in record.getMessage() and "secret detail of a bug" in str(record.exc_info[1])
