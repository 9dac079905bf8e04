"""Command line: ``python -m server`` serves; ``import FILE ...`` loads a file into the cache; ``migrate`` converts one.

Examples
--------
    python -m server                                   # 127.0.0.1:5001, sample data loaded
    python -m server --port 5002 --data-dir ./bars --offline
    python -m server --replay 2                        # live subscriptions replay the cache, 2 bars/s
    python -m server --source examples/csv_folder_source.py:make_source   # bars from a folder of CSV files
    python -m server import prices.csv --ticker SPY --resolution 1d
    python -m server migrate --data-dir ./bars          # a cache of the previous layout to Delta tables
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import pandas as pd

from dataprovider import __version__
from dataprovider.engine.migration import migrate
from dataprovider.engine.refresh import RefreshPolicy
from dataprovider.engine.store import DeltaStore
from dataprovider.enums import DataResolution
from dataprovider.errors import DataProviderError
from dataprovider.instruments import validate_ticker
from server.app import build_service, create_app
from server.logs import configure_logging
from server.runner import PortInUseError, ServerHandle
from server.settings import DEFAULT_HOST, DEFAULT_PORT, Settings, default_data_dir
from server.socket.limits import Limits
from server.source_loading import DEFAULT_SOURCE, ENTRY_POINT_GROUP, SourceLoadError

logger = logging.getLogger("server")

PROG = "python -m server"

#: Seconds the work under way at shutdown gets to finish; what still waits then (a stalled download) is abandoned.
SHUTDOWN_GRACE_SECONDS = 5.0
#: Seconds a cache write under way at the end of the grace period gets to finish.
_WRITE_SECONDS = 30.0


def _positive(kind: type[int] | type[float]):
    """An argparse type: a number of ``kind`` above 0."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _limit_arguments(serve: argparse.ArgumentParser) -> None:
    """The flags of :class:`~server.socket.limits.Limits` (docs/PROTOCOL.md, "Limits")."""
    default = Limits()
    number, decimal = _positive(int), _positive(float)
    group = serve.add_argument_group('limits per client (docs/PROTOCOL.md, "Limits")')
    flags = (  # flag, type, default, metavar, what it bounds
        ("--max-in-flight", number, default.max_in_flight, "N",
         "requests one connection may have unanswered; more are answered BUSY"),
        ("--max-events-per-second", decimal, default.events_per_second, "R",
         "events one connection may send per second, in bursts of --event-burst; more are answered BUSY"),
        ("--event-burst", number, default.event_burst, "N", "events one connection may send at once"),
        ("--max-queued", number, default.max_queued, "N",
         "requests waiting for a worker, all clients together; more are answered BUSY"),
        ("--max-unsent-mb", decimal, default.max_unsent_bytes / 2**20, "MB",
         "replies a client may leave unread before the server waits for it to read them"),
        ("--slow-client-seconds", decimal, default.slow_client_seconds, "S",
         "how long a client may stay over --max-unsent-mb before it is disconnected"),
    )  # fmt: skip
    for flag, kind, value, metavar, text in flags:
        group.add_argument(flag, type=kind, default=value, metavar=metavar, help=f"{text} (default {value:g})")


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        max_in_flight=args.max_in_flight,
        events_per_second=args.max_events_per_second,
        event_burst=args.event_burst,
        max_queued=args.max_queued,
        max_unsent_bytes=int(args.max_unsent_mb * 2**20),
        slow_client_seconds=args.slow_client_seconds,
    )


def _serve_options() -> argparse.ArgumentParser:
    """The flags of ``serve``, which ``python -m server --help`` lists too."""
    serve = argparse.ArgumentParser(add_help=False)
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--log-file", default="data_server.log", help="rotating log file ('' for none)")
    serve.add_argument(
        "--source",
        metavar="SOURCE",
        help=f"where missing bars come from: {DEFAULT_SOURCE!r} (Yahoo Finance, the default), the NAME of an "
        f"installed source (entry-point group {ENTRY_POINT_GROUP}), or MODULE:FACTORY, a module name or .py file "
        "and the function in it that returns the source (docs/SOURCES.md)",
    )
    serve.add_argument("--offline", action="store_true", help="never contact the source; serve the cache")
    serve.add_argument("--no-samples", action="store_true", help="do not load the bundled sample data")
    serve.add_argument(
        "--replay",
        type=_positive(float),
        metavar="SPEED",
        help="live subscriptions play the cached history forward as if live, SPEED bars a second (implies --offline)",
    )
    serve.add_argument("--memory-cache-mb", type=int, default=512, help="memory for hot datasets (default 512)")
    serve.add_argument("--workers", type=int, default=8, help="threads for downloads and batches (default 8)")
    policy = RefreshPolicy()
    for flag, default, kind in (
        ("--min-refresh-intraday", policy.min_interval_intraday, "an intraday"),
        ("--min-refresh-daily", policy.min_interval_daily, "a daily or coarser"),
    ):
        serve.add_argument(
            flag,
            type=_positive(float),
            default=default.total_seconds(),
            metavar="SECONDS",
            help=f"least time before {kind} dataset is asked of the source again (default {default.total_seconds():g})",
        )
    serve.add_argument("--token", help="require this token from every client (default: $DATAPROVIDER_TOKEN)")
    serve.add_argument(
        "--insecure-no-auth", action="store_true", help="allow a non-loopback --host without a token (not advised)"
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin allowed besides the server's own, e.g. http://localhost:8888 (repeatable; "
        "default: $DATAPROVIDER_ALLOWED_ORIGINS, comma-separated)",
    )
    _limit_arguments(serve)
    return serve


def _parser() -> argparse.ArgumentParser:
    """The command line. The top level lists the serve options too, since serving is what no command means."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="cache directory (default: $DATAPROVIDER_HOME, else a per-user data dir)")
    common.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve_options = _serve_options()

    parser = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [serve] [options]\n       {PROG} import FILE --ticker TICKER --resolution RESOLUTION [options]"
        f"\n       {PROG} migrate [--data-dir DIR]",
        description="dataprovider server: caches price bars and serves them over REST and Socket.IO. "
        "With no command it serves, with the options below.",
        epilog=f"`{PROG} COMMAND --help` shows the options of one command.",
        parents=[common, serve_options],
    )
    parser.add_argument("--version", action="version", version=f"dataprovider {__version__}")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    commands.add_parser(
        "serve",
        prog=f"{PROG} serve",
        parents=[common, serve_options],
        help="serve REST and Socket.IO with the options above (the default)",
        description="Serve REST and Socket.IO until SIGINT/SIGTERM.",
    )
    load = commands.add_parser(
        "import",
        prog=f"{PROG} import",
        parents=[common],
        help="load a CSV or Parquet file of bars into the cache",
        description="Load a CSV or Parquet file of bars into the cache.",
    )
    load.add_argument("file", type=Path)
    load.add_argument("--ticker", required=True)
    load.add_argument("--resolution", required=True, choices=DataResolution.values())
    load.add_argument("--timezone", help="timezone of naive timestamps (default: guessed from the ticker)")
    commands.add_parser(
        "migrate",
        prog=f"{PROG} migrate",
        parents=[common],
        help="convert a cache of the previous layout (one Parquet file per dataset) to Delta tables",
        description="Convert a cache of the previous layout (<resolution>/<TICKER>.parquet) to Delta tables, "
        "dataset by dataset; a run cut short resumes where it stopped. Each converted file is kept in "
        "<data dir>/.migrated/ until you delete it; unreadable ones are moved to <data dir>/.quarantine/. "
        "The server does the same on its first start.",
    )
    return parser


def _split(text: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated list."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line; no sub-command means ``serve``.

    Examples
    --------
    >>> args = parse_args(["--port", "5002"])
    >>> args.command, args.port, args.source
    ('serve', 5002, None)
    """
    if not argv or argv[0] not in ("serve", "import", "migrate", "-h", "--help", "--version"):
        argv = ["serve", *argv]
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve" and args.source is not None and (args.offline or args.replay is not None):
        parser.error(
            "argument --source: not allowed with --offline or --replay, which serve the cache alone "
            "and never fetch; drop one or the other"
        )
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings ``serve``'s options (and the environment) say.

    Examples
    --------
    >>> settings = settings_from(parse_args(["--min-refresh-daily", "30"]))
    >>> settings.refresh.min_interval_daily, settings.refresh.min_interval_intraday
    (Timedelta('0 days 00:00:30'), Timedelta('0 days 00:01:00'))
    """
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=default_data_dir(args.data_dir),
        log_file=Path(args.log_file) if args.log_file else None,
        log_level=args.log_level,
        offline=args.offline,
        load_samples=not args.no_samples,
        workers=args.workers,
        memory_cache_mb=args.memory_cache_mb,
        token=args.token or os.environ.get("DATAPROVIDER_TOKEN") or None,
        insecure_no_auth=args.insecure_no_auth,
        allowed_origins=tuple(args.allow_origin or _split(os.environ.get("DATAPROVIDER_ALLOWED_ORIGINS", ""))),
        limits=_limits(args),
        replay=args.replay,
        refresh=RefreshPolicy(
            min_interval_intraday=pd.Timedelta(seconds=args.min_refresh_intraday),
            min_interval_daily=pd.Timedelta(seconds=args.min_refresh_daily),
        ),
        source=args.source or DEFAULT_SOURCE,
    )


def serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit status."""
    settings = settings_from(args)
    configure_logging(settings.log_level, settings.log_file)
    try:
        settings.check_exposure()
    except ValueError as exc:
        logger.error("%s", exc)
        return 2
    if settings.insecure_no_auth and settings.token is None:
        logger.warning("serving %s WITHOUT a token (--insecure-no-auth): anyone reaching it can use it", settings.host)
    try:
        server_app = create_app(settings)
    except SourceLoadError as exc:  # exits with status 2, as argparse does for any bad flag
        _parser().error(f"argument --source: {exc}")
    # Everything made at start-up lives as long as the process: keeping it out of the
    # garbage collector's scans shortens the collections that land in the middle of requests.
    gc.freeze()
    try:
        handle = ServerHandle(server_app.flask, settings.host, settings.port)
    except PortInUseError as exc:
        logger.error("%s", exc.strerror)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    handle.start()
    upstream = "offline" if server_app.service.source is None else server_app.service.source.name
    if settings.replay is not None:
        upstream = f"replay of the cache at {settings.replay:g} bars/s"
    logger.info(
        "dataprovider %s serving %s (data: %s, %d datasets, upstream: %s); Ctrl-C stops it",
        __version__,
        handle.url,
        server_app.service.store.root,
        len(server_app.service.store.list_datasets()),
        upstream,
    )
    # A bounded wait: Python runs signal handlers on the main thread between bytecodes, and a signal
    # delivered to another thread (deltalake's runtime has several) would wait on an unbounded wait forever.
    while not stop.wait(0.5):
        pass
    logger.info("shutting down")
    _end_after_grace(server_app.service.store)
    handle.stop()
    server_app.close()
    server_app.wait_for_workers()  # so that no worker is mid-write while the interpreter ends
    return 0


def _end_after_grace(store: DeltaStore) -> None:
    """End the process :data:`SHUTDOWN_GRACE_SECONDS` from now if it has not ended by then.

    Once ``serve`` returns, Python waits for the worker threads to finish; a download
    stalled on the network would hold the process for minutes. After the grace
    period the writes under way are let finish and no new one starts (no file is
    left half-written), then the process ends, abandoning what still waits.
    """

    def end() -> None:
        if not store.close(timeout=_WRITE_SECONDS):
            logger.error(
                "a cache write did not finish within %g s; no commit names its data file, which the next vacuum removes",
                _WRITE_SECONDS,
            )
        logger.warning("abandoning the requests still waiting after %g s of shutdown", SHUTDOWN_GRACE_SECONDS)
        logging.shutdown()
        os._exit(0)

    watchdog = threading.Timer(SHUTDOWN_GRACE_SECONDS, end)
    watchdog.daemon = True  # does not itself keep the process alive
    watchdog.start()


def import_file(args: argparse.Namespace) -> int:
    """Load one file into the cache; returns the exit status."""
    from dataprovider.engine.seeding import import_frame
    from dataprovider.sources.files import read_bars_file

    configure_logging(args.log_level)
    settings = Settings(data_dir=default_data_dir(args.data_dir), offline=True, load_samples=False)
    try:
        ticker = validate_ticker(args.ticker)
        resolution = DataResolution.parse(args.resolution)
        frame, timezone = read_bars_file(args.file, ticker=ticker, resolution=resolution, timezone=args.timezone)
        info = import_frame(build_service(settings).store, ticker, resolution, frame, timezone)
    except DataProviderError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(
        f"imported {len(frame)} bars of {ticker} {resolution.value} ({timezone}) from {args.file}; "
        f"the cache now holds {info.rows} bars from {info.first} to {info.last} in {info.path}"
    )
    return 0


def migrate_cache(args: argparse.Namespace) -> int:
    """Convert the data directory's cache of the previous layout, printing a line per dataset; the exit status."""
    data_dir = default_data_dir(args.data_dir)
    if not data_dir.is_dir():
        message = f"error: the data directory {data_dir} does not exist; name the one to convert with --data-dir"
        print(message, file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    report = migrate(DeltaStore(data_dir), echo=print)
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m server`` and ``dataprovider-server``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    commands = {"import": import_file, "migrate": migrate_cache}
    return commands.get(args.command, serve)(args)


if __name__ == "__main__":
    sys.exit(main())
