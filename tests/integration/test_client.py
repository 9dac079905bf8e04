"""DataProviderLocal's connection handling and failure reporting against a real server."""

from __future__ import annotations

import logging
import socket
import threading

import pandas as pd
import pytest

from dataprovider import (
    ConnectionFailedError,
    DataProviderError,
    DataProviderLocal,
    InvalidRequestError,
    NotCachedError,
)
from dataprovider.engine.service import DataService


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_context_manager_connects_once_and_always_disconnects(live_server):
    server = live_server()
    with DataProviderLocal(server.url) as provider:
        assert provider.connected and provider.server_info["cached_instruments"] > 0
        first = provider.get_data_socket("SPY", limit=5)
        second = provider.get_data_socket("AAPL", limit=5)  # auto_disconnect leaves the context's connection
        assert provider.connected
    assert not provider.connected
    assert len(first) == len(second) == 5


def test_connection_failure_names_the_url(caplog):
    url = closed_port_url()
    provider = DataProviderLocal(url, timeout=5)
    errors = []
    assert provider.get_data_socket("SPY", error_callback=errors.append) is None
    (error,) = errors
    assert error["code"] == "CONNECTION_FAILED" and error["ticker"] == "SPY"
    assert error["message"].startswith(f"Failed to connect to WebSocket server at {url}")
    with pytest.raises(ConnectionFailedError, match="Failed to connect to WebSocket server"):
        provider.connect()
    assert provider.get_batch_data_socket(["SPY", "AAPL"]) == {}
    assert "Failed to connect" in caplog.text


class StalledService(DataService):
    """Answers only once released, on a worker thread (as if it were downloading)."""

    release = threading.Event()

    def cached_answer(self, query, on_status=None):
        return None

    def get_bars(self, query, on_status=None):
        self.release.wait(10)
        return super().get_bars(query, on_status)


def test_request_timeout_reports_the_ticker(live_server):
    StalledService.release.clear()
    server = live_server(service_class=StalledService)
    provider = server.client(timeout=0.5)
    errors = []
    try:
        assert provider.get_data_socket("SPY", error_callback=errors.append) is None
    finally:
        StalledService.release.set()
    (error,) = errors
    assert error["code"] == "REQUEST_TIMEOUT" and error["ticker"] == "SPY"
    assert error["message"].startswith("Request timeout")
    # The late reply is dropped; the next request on a new connection works.
    assert len(provider.get_data_socket("SPY", limit=3)) == 3


def test_failures_without_error_callback_are_logged_as_warnings(live_server, caplog):
    provider = live_server().client()
    with caplog.at_level(logging.WARNING, logger="dataprovider"):
        assert provider.get_data_socket("NOPE", local_only=True) is None
        frames = provider.get_batch_data_socket(["SPY", "NOPE2"], local_only=True, limit=2)
    assert list(frames) == ["SPY"]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("NOPE: ") and "NOT_CACHED" in m for m in messages)
    assert any(m.startswith("NOPE2: ") for m in messages)


def test_raise_errors_raises_the_matching_exception(live_server):
    provider = live_server().client(raise_errors=True)
    with pytest.raises(NotCachedError) as caught:
        provider.get_data_socket("NOPE", local_only=True)
    assert caught.value.code == "NOT_CACHED" and caught.value.ticker == "NOPE"
    assert isinstance(caught.value, LookupError) and isinstance(caught.value, DataProviderError)
    with pytest.raises(NotCachedError):
        provider.get_data("NOPE", local_only=True)
    with pytest.raises(InvalidRequestError) as caught:
        provider.get_data_socket("SPY", resolution="5h")
    assert caught.value.code == "INVALID_RESOLUTION" and isinstance(caught.value, ValueError)


def test_url_from_environment(live_server, monkeypatch):
    server = live_server()
    monkeypatch.setenv("DATAPROVIDER_URL", server.url)
    provider = DataProviderLocal()
    assert provider.url == server.url
    assert provider.health()["status"] == "ok"


def test_concurrent_calls_share_one_connection(live_server):
    provider = live_server().client()
    provider.connect()
    results: dict[str, pd.DataFrame] = {}

    def ask(ticker, limit):
        results[ticker] = provider.get_data_socket(ticker, limit=limit, auto_disconnect=False)

    threads = [threading.Thread(target=ask, args=(t, n)) for n, t in enumerate(["SPY", "AAPL", "GOOG", "INTC"], 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {t: len(f) for t, f in results.items()} == {"SPY": 5, "AAPL": 6, "GOOG": 7, "INTC": 8}
