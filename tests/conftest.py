"""Shared fixtures: no network, one yfinance cache dir, and real servers on free loopback ports."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings

from dataprovider import DataProviderLocal
from dataprovider.engine.refresh import RefreshPolicy
from dataprovider.engine.seeding import seed
from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.sources.ratelimit import RateLimiter
from dataprovider.sources.sample import sample_datasets
from dataprovider.sources.yahoo import YahooSource
from server.app import ServerApp, create_app
from server.runner import ServerHandle
from server.settings import Settings
from tests.support.clock import FakeClock
from tests.support.no_network import no_network
from tests.support.yahoo_replay import YahooReplay

# Property-based tests (hypothesis, schemathesis): a bounded number of examples, no
# per-example deadline (machines vary), no example database written into the checkout,
# and the same examples on every CI run (CI is set there).
settings.register_profile(
    "dataprovider", max_examples=50, deadline=None, database=None, derandomize=bool(os.environ.get("CI"))
)
settings.load_profile("dataprovider")


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    """Every test runs with the internet out of reach; loopback still works."""
    with no_network():
        yield


@pytest.fixture(scope="session")
def yf_cache_dir(tmp_path_factory) -> Path:
    """yfinance's timezone/cookie cache for the whole run (yfinance honours only the first one set)."""
    return tmp_path_factory.mktemp("yfinance-cache")


@pytest.fixture
def clock() -> FakeClock:
    """A monotonic clock that only moves when told to (for rate limiters)."""
    return FakeClock()


@dataclass
class Now:
    """A settable wall clock: ``now()`` returns ``value`` (tz-aware UTC)."""

    value: pd.Timestamp

    def __call__(self) -> pd.Timestamp:
        return self.value


@pytest.fixture
def make_yahoo_source(yf_cache_dir, clock) -> Callable[..., YahooSource]:
    """``make(replay, now)``: a YahooSource on a recorded-response session, at wall time ``now()``."""

    def make(replay: YahooReplay, now: Callable[[], pd.Timestamp], **kwargs) -> YahooSource:
        limiter = RateLimiter(clock=clock, sleep=clock.sleep)
        return YahooSource(replay.session, cache_dir=yf_cache_dir, limiter=limiter, now=now, clock=clock, **kwargs)

    return make


@pytest.fixture(scope="session")
def sample_cache(tmp_path_factory) -> Path:
    """A data directory holding the bundled sample data, built once and copied per test."""
    root = tmp_path_factory.mktemp("sample-cache")
    seed(DeltaStore(root), sample_datasets(), source="sample")
    return root


@dataclass
class LiveServer:
    """A running server on a free loopback port, and what it answers from."""

    url: str
    service: DataService
    handle: ServerHandle
    app: ServerApp
    clients: list[DataProviderLocal] = field(default_factory=list)

    @property
    def store(self) -> DeltaStore:
        return self.service.store

    def client(self, **kwargs) -> DataProviderLocal:
        """A client of this server, disconnected when the test ends."""
        client = DataProviderLocal(self.url, timeout=kwargs.pop("timeout", 20), **kwargs)
        self.clients.append(client)
        return client


@pytest.fixture
def live_server(tmp_path, sample_cache) -> Iterator[Callable[..., LiveServer]]:
    """``start(source=None, samples=True, clock=None, policy=None, service_class=DataService,
    store_class=DeltaStore, **settings)``.

    Serves a fresh data dir; with ``samples`` it starts as a copy of the bundled
    sample data. ``service_class`` and ``store_class`` let a test put a DataService or
    DeltaStore subclass behind the server; other keywords are server Settings
    (token, allowed_origins, ...).
    """
    running: list[LiveServer] = []

    def start(
        source=None,
        *,
        samples: bool = True,
        clock=None,
        policy: RefreshPolicy | None = None,
        service_class: type[DataService] = DataService,
        store_class: type[DeltaStore] = DeltaStore,
        **settings,
    ) -> LiveServer:
        data_dir = tmp_path / f"data{len(running)}"
        if samples:
            shutil.copytree(sample_cache, data_dir)
        service = service_class(store_class(data_dir), source, clock=clock, policy=policy)
        app = create_app(Settings(data_dir=data_dir, offline=source is None, load_samples=False, **settings), service)
        handle = ServerHandle(app.flask, "127.0.0.1", 0)
        handle.start()
        server = LiveServer(handle.url, service, handle, app)
        running.append(server)
        return server

    yield start
    for server in running:
        for client in server.clients:
            client.disconnect()
        server.handle.stop()
        server.app.close()
