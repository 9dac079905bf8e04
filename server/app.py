"""The application factory: a Flask app with Flask-SocketIO (threading mode) over one DataService."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask_socketio import SocketIO

from dataprovider import protocol
from dataprovider.engine.feeds import Feed, PollingFeed, ReplayFeed
from dataprovider.engine.migration import migrate, needs_migration
from dataprovider.engine.seeding import seed
from dataprovider.engine.service import DataService
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataResolution
from dataprovider.errors import UpstreamUnavailableError
from dataprovider.sources import Source
from dataprovider.sources.sample import sample_datasets
from server.auth import install_rest_guard, origin_checker
from server.http.routes import make_api, register_error_handlers
from server.settings import Settings
from server.socket.events import register_events
from server.socket.packet import WirePacket
from server.socket.streams import FeedFactory, LiveHub
from server.source_loading import load_source

__all__ = ["ServerApp", "build_service", "create_app", "feed_factory"]

logger = logging.getLogger(__name__)


@dataclass
class ServerApp:
    """The pieces of a running server: the WSGI app, its Socket.IO layer, the service and the worker threads."""

    flask: Flask
    socketio: SocketIO
    service: DataService
    workers: ThreadPoolExecutor
    live: LiveHub

    def close(self) -> None:
        """Stop the live streams, the worker threads and the service's (pending work is abandoned)."""
        self.live.close()
        self.workers.shutdown(wait=False, cancel_futures=True)
        self.service.close()

    def wait_for_workers(self) -> None:
        """After :meth:`close`, wait until the work already running on the worker threads has ended.

        The process must not start tearing the interpreter down while a worker is
        still inside a download or a write: native code running then can abort the
        process. (``python -m server`` ends the process itself if this takes longer
        than its shutdown grace period.)
        """
        self.workers.shutdown(wait=True)
        self.service.close(wait=True)


def build_service(settings: Settings, source: Source | None = None) -> DataService:
    """The service for ``settings``: the cache in ``data_dir``, topped up from ``source`` unless offline or replaying.

    ``source`` defaults to the one ``settings.source`` names (Yahoo Finance unless
    told otherwise). A cache of the previous layout (one Parquet file per dataset)
    is converted first (:mod:`dataprovider.engine.migration`); then, unless disabled,
    the bundled sample data is loaded where the cache lacks a dataset.

    Raises
    ------
    SourceLoadError
        If ``settings.source`` does not lead to a source (:func:`server.source_loading.load_source`).
    """
    store = DeltaStore(Path(settings.data_dir), memory_cache_bytes=settings.memory_cache_mb * 2**20)
    if needs_migration(store.root):  # before the samples, which would otherwise fill the datasets it converts
        logger.info("converted the previous cache layout: %s", migrate(store).summary())
    if source is None and not settings.offline and settings.replay is None:
        source = load_source(settings.source, cache_dir=store.root / ".yfinance")
    service = DataService(store, source, policy=settings.refresh)
    if settings.load_samples:
        loaded = seed(store, sample_datasets(), source="sample")
        if loaded:
            logger.info("loaded %d sample dataset(s) into %s", loaded, store.root)
    return service


def feed_factory(settings: Settings, service: DataService) -> FeedFactory:
    """How live subscriptions get their bars: a replay of the cache with ``--replay``, else polls of the source."""

    def make_feed(ticker: str, resolution: DataResolution) -> Feed:
        if settings.replay is not None:
            return ReplayFeed(service, ticker, resolution, settings.replay)
        if service.source is None:
            raise UpstreamUnavailableError(
                "this server runs offline, so it has no live bars: start it with `--replay SPEED` to play "
                "the cached history forward as if live, or without --offline to poll its source",
                ticker=ticker,
            )
        return PollingFeed(service, ticker, resolution)

    return make_feed


def create_app(settings: Settings, service: DataService | None = None) -> ServerApp:
    """Build the Flask + Socket.IO application.

    Parameters
    ----------
    settings : Settings
        Server settings.
    service : DataService, optional
        The service to answer from (tests pass one with a recorded source);
        built from ``settings`` by default.
    """
    service = service or build_service(settings)
    app = Flask("dataprovider")
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = protocol.MAX_MESSAGE_BYTES  # a larger REST body is REQUEST_TOO_LARGE
    # Each client's events are handled in order on its own thread (see server.socket.events).
    # Browsers: the server's own origin, plus only those allowed explicitly (never '*').
    origins = origin_checker(settings.allowed_origins)
    socketio = SocketIO(
        app,
        async_mode="threading",
        async_handlers=False,
        cors_allowed_origins=origins,
        max_http_buffer_size=protocol.MAX_MESSAGE_BYTES,  # a larger message closes that client's connection
        serializer=WirePacket,  # over-long integers reach validation instead of dropping the message
    )
    workers = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="request")
    install_rest_guard(app, settings.token, settings.allowed_origins)
    app.register_blueprint(make_api(service))
    register_error_handlers(app)
    live = register_events(socketio, service, workers, feed_factory(settings, service), settings.token, settings.limits)
    return ServerApp(app, socketio, service, workers, live)
