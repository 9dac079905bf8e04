"""``local_only`` is True unless a request says otherwise, on every interface.

The server has a source that would download: recorded Yahoo answers, and a clock two weeks past the
newest NVDA bar in the cache (so NVDA is behind), with MSFT never fetched. A request that leaves
``local_only`` out reads the cache alone and never reaches the source; one that sends
``local_only=False`` downloads. Each interface is asked as its users ask it: raw Socket.IO events and
HTTP requests with the field left out of the payload, and the Python client's calls without the argument.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
import requests

from dataprovider import protocol
from tests.conftest import LiveServer, Now
from tests.integration.test_socket_events import RawClient
from tests.support.frames import assert_same_frame
from tests.support.yahoo_replay import YahooReplay

NVDA = "nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json"
MSFT = "nyf2_historical-via-chart-MSFT-dividends-2021-02-01-to-2022-01-31.csv.json"
CACHED_UNTIL = pd.Timestamp("2021-07-01", tz="America/New_York")  # NVDA's newest cached bar


@dataclass
class Answer:
    """What one request gave: the ticker's bars, or the code of its error."""

    frame: pd.DataFrame | None
    code: str | None


@dataclass
class World:
    server: LiveServer
    replay: YahooReplay


@pytest.fixture
def world(live_server, make_yahoo_source) -> World:
    """A server with a source; its cache holds NVDA up to 2021-07-01 and it is now 2021-07-16."""
    replay = YahooReplay(NVDA, MSFT)
    now = Now(pd.Timestamp("2021-07-01 22:00", tz="UTC"))
    replay.as_of(now.value)
    server = live_server(make_yahoo_source(replay, now), samples=False, clock=now)
    assert server.client().get_data_socket("NVDA", period="3mo", local_only=False).index[-1] == CACHED_UNTIL
    now.value = pd.Timestamp("2021-07-16 22:00", tz="UTC")
    replay.as_of(now.value)
    return World(server, replay)


# ------------------------------------------------------------------ the interfaces, asked alike
def batch_answer(reply: dict[str, Any], ticker: str) -> Answer:
    if ticker in reply["errors"]:
        return Answer(None, reply["errors"][ticker]["code"])
    return Answer(protocol.frames_from_batch_reply(reply)[ticker], None)


def socket_get_data(server: LiveServer, ticker: str, fields: dict[str, Any]) -> Answer:
    client = RawClient(server.url)
    try:
        name, reply = client.ask(protocol.GET_DATA, {"request_id": "d", "ticker": ticker, **fields})[-1]
    finally:
        client.close()
    if name == protocol.DATA_ERROR:
        return Answer(None, reply["code"])
    return Answer(protocol.decode_frame(reply["data"]), None)


def socket_get_batch_data(server: LiveServer, ticker: str, fields: dict[str, Any]) -> Answer:
    client = RawClient(server.url)
    try:
        _, reply = client.ask(protocol.GET_BATCH_DATA, {"request_id": "b", "tickers": [ticker], **fields})[-1]
    finally:
        client.close()
    return batch_answer(reply, ticker)


def rest_get_data(server: LiveServer, ticker: str, fields: dict[str, Any]) -> Answer:
    params = {name: str(value).lower() for name, value in fields.items()}  # local_only=false
    body = requests.get(f"{server.url}/api/data/{ticker}", params=params, timeout=20).json()
    if "error" in body:
        return Answer(None, body["error"]["code"])
    return Answer(protocol.decode_frame(body["data"]), None)


def rest_batch(server: LiveServer, ticker: str, fields: dict[str, Any]) -> Answer:
    reply = requests.post(f"{server.url}/api/batch", json={"tickers": [ticker], **fields}, timeout=20).json()
    return batch_answer(reply, ticker)


def client_call(method: str, *, batch: bool = False, awaited: bool = False) -> Callable[..., Answer]:
    """``DataProviderLocal.<method>`` asked for one ticker, its failure taken from ``error_callback``."""

    def ask(server: LiveServer, ticker: str, fields: dict[str, Any]) -> Answer:
        errors: list[dict] = []
        call = getattr(server.client(), method)
        extra = {"progress": False} if batch else {}
        result = call([ticker] if batch else ticker, error_callback=errors.append, **extra, **fields)
        result = asyncio.run(result) if awaited else result
        frame = result.get(ticker) if batch else result
        return Answer(frame, errors[0]["code"] if errors else None)

    return ask


INTERFACES = {
    "socket get_data": socket_get_data,
    "socket get_batch_data": socket_get_batch_data,
    "GET /api/data": rest_get_data,
    "POST /api/batch": rest_batch,
    "get_data_socket": client_call("get_data_socket"),
    "get_batch_data_socket": client_call("get_batch_data_socket", batch=True),
    "get_data": client_call("get_data"),
    "get_batch_data": client_call("get_batch_data", batch=True),
    "get_data_async": client_call("get_data_async", awaited=True),
    "get_batch_data_async": client_call("get_batch_data_async", batch=True, awaited=True),
}


# ------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("interface", INTERFACES)
def test_without_local_only_the_cache_answers_and_the_source_is_not_asked(world, interface):
    asked = len(world.replay.requests)
    answer = INTERFACES[interface](world.server, "NVDA", {})
    assert answer.code is None
    assert_same_frame(answer.frame, world.server.store.read("NVDA", "1d"))  # the default 1y holds all of it
    assert answer.frame.index[-1] == CACHED_UNTIL  # not brought up to date
    assert len(world.replay.requests) == asked


@pytest.mark.parametrize("interface", INTERFACES)
def test_without_local_only_what_is_not_cached_is_not_cached_and_not_downloaded(world, interface):
    answer = INTERFACES[interface](world.server, "MSFT", {})
    assert answer.frame is None and answer.code == "NOT_CACHED"
    assert world.replay.requests_for("MSFT") == [] and world.server.store.info("MSFT", "1d") is None


@pytest.mark.parametrize("interface", INTERFACES)
def test_local_only_false_downloads_what_the_cache_is_missing(world, interface):
    fetched = world.replay.fetch_count("NVDA")
    answer = INTERFACES[interface](world.server, "NVDA", {"local_only": False})
    assert answer.code is None and answer.frame.index[-1] == pd.Timestamp("2021-07-16", tz="America/New_York")
    assert world.replay.fetch_count("NVDA") > fetched
    missing = INTERFACES[interface](world.server, "MSFT", {"local_only": False})
    assert missing.code is None and world.server.store.info("MSFT", "1d").rows == len(missing.frame)
