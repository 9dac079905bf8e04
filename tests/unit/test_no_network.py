"""The test-suite guard that keeps tests off the internet."""

from __future__ import annotations

import socket

import pandas as pd
import pytest
import requests

from dataprovider.sources.ratelimit import RateLimiter
from dataprovider.sources.yahoo import YahooSource
from tests.support.clock import FakeClock
from tests.support.no_network import NetworkAccessError, no_network


def test_internet_hosts_are_refused_but_loopback_is_not():
    with no_network():
        with pytest.raises(NetworkAccessError):
            requests.get("https://query2.finance.yahoo.com/v8/finance/chart/SPY", timeout=1)
        with pytest.raises(NetworkAccessError):
            socket.create_connection(("93.184.216.34", 443), timeout=1)
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with server, socket.create_connection(server.getsockname(), timeout=1):
            pass


def test_yahoo_source_without_a_replay_session_cannot_reach_yahoo(tmp_path_factory):
    clock = FakeClock()
    with no_network():
        source = YahooSource(
            cache_dir=tmp_path_factory.mktemp("yfinance-cache"),
            limiter=RateLimiter(clock=clock, sleep=clock.sleep),
            now=lambda: pd.Timestamp("2024-01-01", tz="UTC"),
        )
        with pytest.raises(NetworkAccessError):
            source.fetch("SPY", "1d", None, None)


def test_the_guard_is_lifted_on_exit():
    real = socket.getaddrinfo
    with no_network():
        assert socket.getaddrinfo is not real
    assert socket.getaddrinfo is real
