"""``DataProviderLocal``: the notebook client, over Socket.IO (default) or REST, blocking or awaitable.

Every blocking call runs on python-socketio's thread-based client, so it works
the same in a script, inside a running Jupyter kernel, and when called from a
coroutine: nothing here runs or patches an event loop. The ``*_async`` twins run
the blocking call on a worker thread (``asyncio.to_thread``) while user
callbacks and progress widgets stay on the event loop's thread; several of them
awaited together overlap on one shared connection. Cancelling an awaiting task,
a timeout or Ctrl-C tells the server to drop the rest of the request, and the
connection stays usable.

The module is longer than most (about 510 lines) because it is the public API:
each call the seed documents is spelled out with its parameters and examples,
and the transports it drives live in the modules beside it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import pandas as pd

from dataprovider import protocol
from dataprovider.client.batches import BatchRun, Callback, report_error, result_from_reply
from dataprovider.client.connection import RequestTicket, SocketConnection
from dataprovider.client.rest import RestTransport
from dataprovider.client.subscriptions import LiveBar, Subscription, Subscriptions
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import DataProviderError
from dataprovider.protocol.events import DEFAULT_URL
from dataprovider.protocol.payloads import query_payload

__all__ = ["DataProviderLocal"]


T = TypeVar("T")


class DataProviderLocal:
    """Client of a dataprovider server.

    Parameters
    ----------
    url : str, optional
        The server's base URL; default ``$DATAPROVIDER_URL``, else
        http://127.0.0.1:5001.
    timeout : float
        Seconds to wait for a reply; any message about the request (status,
        progress) restarts the wait, so long downloads do not time out while
        the server is working on them.
    raise_errors : bool
        Raise :class:`~dataprovider.errors.DataProviderError` subclasses instead
        of returning None / leaving tickers out and reporting the error.
    token : str, optional
        The server's token, if it requires one; default ``$DATAPROVIDER_TOKEN``.

    Examples
    --------
    These need a server running at the default URL (``python -m server``):

    >>> from dataprovider import DataPeriod, DataProviderLocal, DataResolution
    >>> provider = DataProviderLocal()
    >>> df = provider.get_data_socket("SPY", DataResolution.DAY_01, DataPeriod.YEAR_01)  # doctest: +SKIP
    >>> df.columns.tolist(), str(df.index.tz)                                           # doctest: +SKIP
    (['Open', 'High', 'Low', 'Close', 'Volume'], 'America/New_York')

    One connection for several calls, closed at the end of the block:

    >>> with DataProviderLocal() as dp:                                                  # doctest: +SKIP
    ...     frames = dp.get_batch_data_socket(["SPY", "AAPL"], limit=100)
    >>> sorted(frames), len(frames["SPY"])                                               # doctest: +SKIP
    (['AAPL', 'SPY'], 100)

    In a notebook cell (top-level ``await``):

    >>> df = await provider.get_data_async("SPY")                                        # doctest: +SKIP
    """

    def __init__(
        self, url: str | None = None, timeout: float = 30.0, *, raise_errors: bool = False, token: str | None = None
    ) -> None:
        self.url = (url or os.environ.get("DATAPROVIDER_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.raise_errors = raise_errors
        token = token or os.environ.get("DATAPROVIDER_TOKEN") or None
        self._socket = SocketConnection(self.url, timeout, token)
        self._rest = RestTransport(self.url, timeout, token)
        self._live = Subscriptions(self.get_data_socket, self._socket)

    # ------------------------------------------------------------ connection
    @property
    def connected(self) -> bool:
        """Whether the Socket.IO connection is up."""
        return self._socket.connected

    @property
    def server_info(self) -> dict[str, Any]:
        """What the server said on connecting (version, protocol version, cached instruments)."""
        return self._socket.server_info

    def connect(self) -> DataProviderLocal:
        """Open the Socket.IO connection and keep it open for later calls until :meth:`disconnect`.

        Raises
        ------
        ConnectionFailedError
            If the server cannot be reached.
        """
        self._socket.open(hold=True)
        return self

    def disconnect(self) -> None:
        """Close every live subscription and the Socket.IO connection (no-op if closed)."""
        self._live.close_all()
        self._socket.close()

    # Names kept from earlier versions of the client.
    _connect_socket = connect
    _disconnect_socket = disconnect

    def __enter__(self) -> DataProviderLocal:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    # --------------------------------------------------------- socket calls
    def get_data_socket(
        self,
        ticker: str,
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = True,
        callback: Callback = None,
        error_callback: Callback = None,
        auto_disconnect: bool = True,
    ) -> pd.DataFrame | None:
        """Bars of one ticker over Socket.IO, as a DataFrame (None on failure).

        Parameters
        ----------
        ticker : str
            A Yahoo Finance symbol ('SPY', 'BTC-USD', '^GSPC', ...).
        resolution, period : DataResolution / DataPeriod or their string values
            Bar width, and how far back from the end of the window to reach.
        time_start, time_end : date, datetime or ISO string, optional
            Window bounds (start inclusive, an end date includes that whole day).
        limit : int, optional
            Keep only the last ``limit`` rows.
        local_only : bool
            Answer from the cache alone, never download (default: True).
            ``local_only=False`` first downloads what the cache is missing.
        callback : callable, optional
            Called with a dict (ticker, resolution, rows, start_date, end_date,
            timezone, source, stale, warnings, data) on success.
        error_callback : callable, optional
            Called with a dict (code, message, ticker, ...) on failure; without
            it failures are logged as warnings.
        auto_disconnect : bool
            Close the connection when no other call is using it, unless it was
            opened with :meth:`connect`.

        Examples
        --------
        With a server running at the default URL:

        >>> provider = DataProviderLocal()
        >>> df = provider.get_data_socket("BTC-USD", "1d", "1y", local_only=True)         # doctest: +SKIP
        >>> df.index.name, str(df.index.tz)                                               # doctest: +SKIP
        ('Date', 'UTC')
        >>> provider.get_data_socket("SPY", "1d", time_start="2017-12-27", time_end="2017-12-29",
        ...                          local_only=True)["Close"].round(2).tolist()          # doctest: +SKIP
        [267.32, 267.87, 266.86]
        """
        payload = self._data_payload(ticker, resolution, period, time_start, time_end, limit, local_only)
        try:
            reply = self._socket.request(protocol.GET_DATA, payload, ticker=ticker, auto_disconnect=auto_disconnect)
        except DataProviderError as error:
            return self._fail(error, error_callback, ticker)
        return self._deliver(reply, callback)

    def get_batch_data_socket(
        self,
        tickers: Iterable[str],
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = True,
        callback: Callback = None,
        error_callback: Callback = None,
        progress_callback: Callback = None,
        auto_disconnect: bool = True,
        progress: object = "auto",
    ) -> dict[str, pd.DataFrame]:
        """Bars of several tickers in one request: a dict ticker -> DataFrame.

        Failed tickers are left out of the dict and reported through
        ``error_callback`` (or logged). ``progress_callback`` gets a dict
        (ticker, progress 'i/n', index, total, status, rows, error) as each
        ticker finishes, in order; ``callback`` gets each success like
        :meth:`get_data_socket`'s. ``progress`` shows the batch's progress:
        'auto' (a widget in a notebook, a text bar in a terminal, nothing when
        not interactive; ``$DATAPROVIDER_PROGRESS`` overrides it), True,
        False, 'widget', 'text' or 'off'. Every batch ends with one summary line.
        Ctrl-C stops the batch: the server drops the tickers not yet answered.
        Other parameters are as for :meth:`get_data_socket`: ``local_only``
        (default True) reads the cache alone, ``local_only=False`` downloads
        what it is missing.
        """
        tickers, payload = self._batch_payload(tickers, resolution, period, time_start, time_end, limit, local_only)
        run = BatchRun(tickers, progress, callback, error_callback, progress_callback, self.raise_errors)
        try:
            reply = self._socket.request(
                protocol.GET_BATCH_DATA,
                payload,
                ticker=None,
                auto_disconnect=auto_disconnect,
                on_progress=run.orderer.add,
            )
        except BaseException as error:  # Ctrl-C too: the display must end, not stay running
            return run.fail(error)
        return run.complete(reply)

    # ---------------------------------------------------------- async twins
    async def get_data_async(
        self,
        ticker: str,
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = True,
        callback: Callback = None,
        error_callback: Callback = None,
        auto_disconnect: bool = True,
    ) -> pd.DataFrame | None:
        """Awaitable :meth:`get_data_socket`, with the same parameters and result.

        Like it, it reads the cache alone unless ``local_only=False`` (the default
        is True), which downloads what the cache is missing. Works with top-level
        ``await`` in a notebook and in any asyncio program; calls awaited together
        (``asyncio.gather``) run at the same time. Callbacks run on the event
        loop's thread.

        Examples
        --------
        In a notebook cell (top-level ``await``), with a server running at the default URL:

        >>> import asyncio
        >>> provider = DataProviderLocal()
        >>> spy, aapl = await asyncio.gather(provider.get_data_async("SPY"),
        ...                                  provider.get_data_async("AAPL"))   # doctest: +SKIP
        """
        payload = self._data_payload(ticker, resolution, period, time_start, time_end, limit, local_only)
        ticket = RequestTicket()
        try:
            reply = await _in_thread(
                ticket,
                lambda: self._socket.request(
                    protocol.GET_DATA, payload, ticker=ticker, auto_disconnect=auto_disconnect, ticket=ticket
                ),
            )
        except DataProviderError as error:
            return self._fail(error, error_callback, ticker)
        return self._deliver(reply, callback)

    async def get_batch_data_async(
        self,
        tickers: Iterable[str],
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = True,
        callback: Callback = None,
        error_callback: Callback = None,
        progress_callback: Callback = None,
        auto_disconnect: bool = True,
        progress: object = "auto",
    ) -> dict[str, pd.DataFrame]:
        """Awaitable :meth:`get_batch_data_socket`, with the same parameters and result.

        It reads the cache alone unless ``local_only=False`` (the default is True),
        which downloads what the cache is missing.
        Progress widgets and callbacks are updated on the event loop's thread.
        Cancelling the awaiting task makes the server drop the rest of the batch.
        """
        tickers, payload = self._batch_payload(tickers, resolution, period, time_start, time_end, limit, local_only)
        run = BatchRun(tickers, progress, callback, error_callback, progress_callback, self.raise_errors)
        loop = asyncio.get_running_loop()
        ticket = RequestTicket()

        def relay(update: dict[str, Any]) -> None:  # on the worker thread: hand over to the loop
            loop.call_soon_threadsafe(run.orderer.add, update)

        try:
            reply = await _in_thread(
                ticket,
                lambda: self._socket.request(
                    protocol.GET_BATCH_DATA,
                    payload,
                    ticker=None,
                    auto_disconnect=auto_disconnect,
                    on_progress=relay,
                    ticket=ticket,
                ),
            )
        except BaseException as error:
            return run.fail(error)
        return run.complete(reply)

    # ----------------------------------------------------------- REST calls
    def get_data(
        self,
        ticker: str,
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = True,
        callback: Callback = None,
        error_callback: Callback = None,
    ) -> pd.DataFrame | None:
        """:meth:`get_data_socket` over REST (``GET /api/data/<ticker>``), with the same parameters and result.

        It reads the cache alone unless ``local_only=False`` (the default is True),
        which downloads what the cache is missing.
        """
        params = query_payload(resolution, period, time_start, time_end, limit, local_only, "arrow")
        params["local_only"] = "true" if local_only else "false"
        try:
            frame, summary = self._rest.data(ticker, params)
        except DataProviderError as error:
            return self._fail(error, error_callback, ticker)
        if callback is not None:
            callback({**summary, "data": frame})
        return frame

    def get_batch_data(
        self,
        tickers: Iterable[str],
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = True,
        callback: Callback = None,
        error_callback: Callback = None,
        progress_callback: Callback = None,
        progress: object = "auto",
    ) -> dict[str, pd.DataFrame]:
        """:meth:`get_batch_data_socket` over REST (``POST /api/batch``); progress is reported when it ends.

        It reads the cache alone unless ``local_only=False`` (the default is True),
        which downloads what the cache is missing.
        """
        tickers, body = self._batch_payload(tickers, resolution, period, time_start, time_end, limit, local_only)
        run = BatchRun(tickers, progress, callback, error_callback, progress_callback, self.raise_errors)
        try:
            reply = self._rest.batch(body)
        except BaseException as error:
            return run.fail(error)
        return run.complete(reply)

    def get_instruments_local(self) -> pd.DataFrame:
        """The server's cached datasets: ticker, resolution, rows, first, last, timezone, source, last_fetched.

        Raises
        ------
        DataProviderError
            If the server cannot be reached or answers with an error.
        """
        rows = self._rest.call("GET", "/api/instruments", None).json()["instruments"]
        columns = ["ticker", "resolution", "rows", "first", "last", "timezone", "source", "last_fetched"]
        frame = pd.DataFrame(rows, columns=columns)
        for column in ("first", "last", "last_fetched"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame

    # ------------------------------------------------------------ live bars
    def subscribe(
        self,
        ticker: str,
        resolution: DataResolution | str,
        callback: Callable[[LiveBar], None],
        *,
        error_callback: Callable[[DataProviderError], None] | None = None,
        history: int = 0,
    ) -> Subscription:
        """Receive the live bars of one ticker: ``callback(bar)`` for each update, in order.

        Parameters
        ----------
        ticker : str
            A Yahoo Finance symbol.
        resolution : DataResolution or str
            Bar width.
        callback : callable
            Called with a :class:`~dataprovider.client.subscriptions.LiveBar` for every update,
            on the subscription's own thread: the forming bar each time it changes
            (``is_final`` False), then once final.
        error_callback : callable, optional
            Called with the :class:`~dataprovider.errors.DataProviderError` when the
            server's feed fails (it keeps trying); logged when not given.
        history : int
            Also deliver this many cached final bars first, oldest first.

        Returns
        -------
        Subscription
            ``close()`` it (or use it in a ``with`` block) to stop. It keeps the
            connection open meanwhile, and reconnects and resumes after a drop, filling
            the gap from the cache.

        Raises
        ------
        DataProviderError
            INVALID_TICKER, INVALID_RESOLUTION, NOT_CACHED (replay), ... as for
            ``get_data``; CONNECTION_FAILED if the server cannot be reached.

        Examples
        --------
        Print each update for ten seconds, with a server running at the default URL
        (``python -m server --replay 5`` plays the bundled sample forward as if live):

        >>> import time
        >>> provider = DataProviderLocal()
        >>> with provider.subscribe("BTC-USD", "1h", print):       # doctest: +SKIP
        ...     time.sleep(10)
        LiveBar(ticker='BTC-USD', resolution=<DataResolution.HOUR_01: '1h'>, time=Timestamp(...), ..., seq=...)
        ...
        """
        return self._live.subscribe(ticker, resolution, callback, error_callback, history)

    async def stream(
        self, ticker: str, resolution: DataResolution | str, *, history: int = 0
    ) -> AsyncIterator[LiveBar]:
        """The live bars of one ticker as an async iterator (``async for bar in provider.stream(...)``).

        Leaving the loop (``break``, an exception, a cancelled task) unsubscribes.
        Feed failures are logged and the stream goes on. See :meth:`subscribe`.
        """
        loop = asyncio.get_running_loop()
        bars: asyncio.Queue[LiveBar] = asyncio.Queue()
        subscription = await asyncio.to_thread(
            self.subscribe,
            ticker,
            resolution,
            lambda bar: loop.call_soon_threadsafe(bars.put_nowait, bar),
            history=history,
        )
        try:
            while True:
                yield await bars.get()
        finally:
            await asyncio.to_thread(subscription.close)

    def health(self) -> dict[str, Any]:
        """The server's ``/api/health`` answer (version, protocol, cached instruments)."""
        return self._rest.call("GET", "/api/health", None).json()

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _data_payload(ticker, resolution, period, time_start, time_end, limit, local_only) -> dict[str, Any]:
        query = query_payload(resolution, period, time_start, time_end, limit, local_only, "arrow")
        return {"ticker": ticker, **query}

    @staticmethod
    def _batch_payload(
        tickers, resolution, period, time_start, time_end, limit, local_only
    ) -> tuple[list[Any], dict[str, Any]]:
        tickers = [tickers] if isinstance(tickers, str) else list(tickers)
        query = query_payload(resolution, period, time_start, time_end, limit, local_only, "arrow")
        return tickers, {"tickers": tickers, **query}

    @staticmethod
    def _deliver(reply: dict[str, Any], callback: Callback) -> pd.DataFrame:
        frame, info = result_from_reply(reply)
        if callback is not None:
            callback(info)
        return frame

    def _fail(self, error: DataProviderError, error_callback: Callback, ticker: str | None) -> None:
        if self.raise_errors:
            raise error
        report_error(error, error_callback, ticker)
        return None


async def _in_thread(ticket: RequestTicket, call: Callable[[], T]) -> T:
    """Run a blocking request on a worker thread; if the awaiting task is cancelled, abandon the request."""
    try:
        return await asyncio.to_thread(call)
    except asyncio.CancelledError:
        ticket.abandon()
        raise
