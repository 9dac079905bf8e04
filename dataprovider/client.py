"""``DataProviderLocal``: the notebook client, over Socket.IO (default) or REST.

Blocking methods run on python-socketio's thread-based client, so they work
the same in a script and inside a running Jupyter kernel, with no event-loop
patching. Socket handlers only enqueue replies; the calling thread drains its
queue and runs every user callback, in order.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import requests
import socketio

from . import protocol
from .enums import DataPeriod, DataResolution
from .errors import ConnectionFailedError, DataProviderError, RequestTimeoutError, error_from_payload
from .replies import Callback, ProgressOrderer, error_from_reply, query_payload, report_error, result_from_reply

__all__ = ["DEFAULT_URL", "DataProviderLocal"]

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:5001"

_REPLY_EVENTS = (
    protocol.DATA_RESPONSE,
    protocol.DATA_ERROR,
    protocol.DATA_STATUS,
    protocol.BATCH_RESPONSE,
    protocol.BATCH_ERROR,
    protocol.BATCH_PROGRESS,
)
_LOST = "connection lost"


@dataclass
class _Pending:
    """Replies to one request, queued by socket threads for the waiting caller."""

    replies: queue.Queue = field(default_factory=queue.Queue)


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

    Examples
    --------
    >>> provider = DataProviderLocal()                                  # doctest: +SKIP
    >>> df = provider.get_data_socket("SPY", DataResolution.DAY_01, DataPeriod.YEAR_01)
    >>> with DataProviderLocal() as dp:
    ...     frames = dp.get_batch_data_socket(["SPY", "AAPL"], limit=100)
    """

    def __init__(self, url: str | None = None, timeout: float = 30.0, *, raise_errors: bool = False) -> None:
        self.url = (url or os.environ.get("DATAPROVIDER_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.raise_errors = raise_errors
        self._pending: dict[str, _Pending] = {}
        self._pending_guard = threading.Lock()
        self._connect_guard = threading.Lock()
        self._emit_guard = threading.Lock()
        self._ids = itertools.count(1)
        self._client_tag = uuid.uuid4().hex[:8]
        self.server_info: dict[str, Any] = {}
        self._sio = self._new_socket()
        self._http = requests.Session()

    # ------------------------------------------------------------ connection
    def _new_socket(self) -> socketio.Client:
        sio = socketio.Client(reconnection=False, handle_sigint=False)
        for event in _REPLY_EVENTS:
            sio.on(event, self._enqueue_handler(event))
        sio.on(protocol.CONNECTION_RESPONSE, self._on_connection_response)
        sio.on("disconnect", self._on_disconnect)
        return sio

    def _enqueue_handler(self, event: str):
        def handler(payload: Any = None) -> None:
            request_id = payload.get("request_id") if isinstance(payload, dict) else None
            with self._pending_guard:
                pending = self._pending.get(request_id)
            if pending is not None:
                pending.replies.put((event, payload))
            else:
                logger.debug("dropping %s for request %s, which is no longer awaited", event, request_id)

        return handler

    def _on_connection_response(self, payload: dict[str, Any]) -> None:
        self.server_info = dict(payload or {})

    def _on_disconnect(self, *args: Any) -> None:
        with self._pending_guard:
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.replies.put((_LOST, None))

    @property
    def connected(self) -> bool:
        """Whether the Socket.IO connection is up."""
        return self._sio.connected

    def connect(self) -> DataProviderLocal:
        """Open the Socket.IO connection (no-op if open); later calls reuse it until :meth:`disconnect`.

        Raises
        ------
        ConnectionFailedError
            If the server cannot be reached.
        """
        with self._connect_guard:
            if self._sio.connected:
                return self
            self._sio = self._new_socket()
            try:
                self._sio.connect(self.url, transports=["websocket"], wait_timeout=self.timeout)
            except (socketio.exceptions.ConnectionError, OSError, ValueError) as exc:
                raise ConnectionFailedError(
                    f"Failed to connect to WebSocket server at {self.url}: {exc}. "
                    "Is the server running? Start it with `python -m server` (or `make serve`).",
                    details={"url": self.url},
                ) from exc
        return self

    def disconnect(self) -> None:
        """Close the Socket.IO connection (no-op if closed)."""
        with self._connect_guard:
            if self._sio.connected:
                self._sio.disconnect()

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
        local_only: bool = False,
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
            Answer from the cache alone, never download.
        callback : callable, optional
            Called with a dict (ticker, resolution, rows, start_date, end_date,
            timezone, source, stale, warnings, data) on success.
        error_callback : callable, optional
            Called with a dict (code, message, ticker, ...) on failure; without
            it failures are logged as warnings.
        auto_disconnect : bool
            Close the connection afterwards unless it was opened with
            :meth:`connect` beforehand.

        Examples
        --------
        >>> df = provider.get_data_socket("BTC-USD", "1d", "1y", local_only=True)   # doctest: +SKIP
        """
        query = query_payload(resolution, period, time_start, time_end, limit, local_only, "arrow")
        payload = {"ticker": ticker, **query}
        try:
            reply = self._request(protocol.GET_DATA, payload, ticker, auto_disconnect)
            if reply is None:
                return None
            frame, info = result_from_reply(reply)
        except DataProviderError as error:
            return self._fail(error, error_callback, ticker)
        if callback is not None:
            callback(info)
        return frame

    def get_batch_data_socket(
        self,
        tickers: Iterable[str],
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = False,
        callback: Callback = None,
        error_callback: Callback = None,
        progress_callback: Callback = None,
        auto_disconnect: bool = True,
    ) -> dict[str, pd.DataFrame]:
        """Bars of several tickers in one request: a dict ticker -> DataFrame.

        Failed tickers are left out of the dict and reported through
        ``error_callback`` (or logged). ``progress_callback`` gets a dict
        (ticker, progress 'i/n', index, total, status, rows, error) as each
        ticker finishes, in order; ``callback`` gets each success like
        :meth:`get_data_socket`'s. Other parameters are as for
        :meth:`get_data_socket`.
        """
        tickers = list(tickers) if not isinstance(tickers, str) else tickers
        payload = {
            "tickers": tickers,
            **query_payload(resolution, period, time_start, time_end, limit, local_only, "arrow"),
        }
        progress = ProgressOrderer(progress_callback)
        try:
            reply = self._request(protocol.GET_BATCH_DATA, payload, None, auto_disconnect, progress)
        except DataProviderError as error:
            self._fail(error, error_callback, None)
            return {}
        return self._batch_results(reply, tickers, progress, callback, error_callback)

    def _batch_results(
        self,
        reply: dict[str, Any],
        tickers: list[str],
        progress: ProgressOrderer,
        callback: Callback,
        error_callback: Callback,
    ) -> dict[str, pd.DataFrame]:
        order = [str(t).upper() if isinstance(t, str) else str(t) for t in tickers]
        order = [t for t in dict.fromkeys(order) if t in reply["results"] or t in reply["errors"]]
        order += [t for t in (*reply["errors"], *reply["results"]) if t not in order]
        progress.finish(reply, order)
        frames: dict[str, pd.DataFrame] = {}
        errors: list[DataProviderError] = []
        for ticker in order:
            if ticker in reply["results"]:
                frame, info = result_from_reply(reply["results"][ticker])
                frames[ticker] = frame
                if callback is not None:
                    callback(info)
            else:
                error = error_from_reply(reply["errors"][ticker], ticker)
                errors.append(error)
                report_error(error, error_callback, ticker)
        if errors and self.raise_errors and not frames:
            raise errors[0]
        return frames

    def _request(
        self,
        event: str,
        payload: dict[str, Any],
        ticker: str | None,
        auto_disconnect: bool,
        progress: ProgressOrderer | None = None,
    ) -> dict[str, Any]:
        """Send one request and wait for its final reply; connect first (and close after) if needed."""
        opened_here = not self._sio.connected
        self.connect()
        request_id = f"{self._client_tag}-{next(self._ids)}"
        pending = _Pending()
        with self._pending_guard:
            self._pending[request_id] = pending
        try:
            with self._emit_guard:  # python-socketio's emit is not thread-safe
                self._sio.emit(event, {**payload, "request_id": request_id})
            return self._wait(pending, ticker, progress)
        finally:
            with self._pending_guard:
                self._pending.pop(request_id, None)
            if auto_disconnect and opened_here:
                self.disconnect()

    def _wait(self, pending: _Pending, ticker: str | None, progress: ProgressOrderer | None) -> dict[str, Any]:
        """Drain the request's queue until its final reply; every message restarts the timeout."""
        while True:
            try:
                event, reply = pending.replies.get(timeout=self.timeout)
            except queue.Empty:
                raise RequestTimeoutError(
                    f"Request timeout: no reply from {self.url} for {ticker or 'the batch'} within {self.timeout:g} s",
                    ticker=ticker,
                ) from None
            if event == _LOST:
                raise ConnectionFailedError(
                    f"the connection to {self.url} was lost before the reply for {ticker or 'the batch'} came",
                    ticker=ticker,
                )
            if event in (protocol.DATA_RESPONSE, protocol.BATCH_RESPONSE):
                return reply
            if event in (protocol.DATA_ERROR, protocol.BATCH_ERROR):
                raise error_from_reply(reply, ticker)
            if event == protocol.BATCH_PROGRESS and progress is not None:
                progress.add(reply)
            elif event == protocol.DATA_STATUS:
                logger.debug("%s: %s", ticker, reply.get("status"))

    def _fail(self, error: DataProviderError, error_callback: Callback, ticker: str | None) -> None:
        if self.raise_errors:
            raise error
        report_error(error, error_callback, ticker)
        return None

    # ----------------------------------------------------------- REST calls
    def get_data(
        self,
        ticker: str,
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = False,
        callback: Callback = None,
        error_callback: Callback = None,
    ) -> pd.DataFrame | None:
        """:meth:`get_data_socket` over REST (``GET /api/data/<ticker>``), with the same parameters and result."""
        params = query_payload(resolution, period, time_start, time_end, limit, local_only, "arrow")
        params["local_only"] = "true" if local_only else "false"
        try:
            response = self._http_call("GET", f"/api/data/{ticker}", ticker, params=params)
            frame = protocol.frame_from_arrow(response.content)
        except DataProviderError as error:
            return self._fail(error, error_callback, ticker)
        if callback is not None:
            info = json.loads(response.headers.get("X-Dataprovider-Summary", "{}"))
            callback({**info, "data": frame})
        return frame

    def get_batch_data(
        self,
        tickers: Iterable[str],
        resolution: DataResolution | str = DataResolution.DAY_01,
        period: DataPeriod | str = DataPeriod.YEAR_01,
        time_start: object = None,
        time_end: object = None,
        limit: int | None = None,
        local_only: bool = False,
        callback: Callback = None,
        error_callback: Callback = None,
        progress_callback: Callback = None,
    ) -> dict[str, pd.DataFrame]:
        """:meth:`get_batch_data_socket` over REST (``POST /api/batch``); progress is reported when it ends."""
        tickers = list(tickers) if not isinstance(tickers, str) else tickers
        body = {
            "tickers": tickers,
            **query_payload(resolution, period, time_start, time_end, limit, local_only, "json"),
        }
        try:
            reply = self._http_call("POST", "/api/batch", None, json=body).json()
        except DataProviderError as error:
            self._fail(error, error_callback, None)
            return {}
        return self._batch_results(reply, tickers, ProgressOrderer(progress_callback), callback, error_callback)

    def get_instruments_local(self) -> pd.DataFrame:
        """The server's cached datasets: ticker, resolution, rows, first, last, timezone, source, last_fetched.

        Raises
        ------
        DataProviderError
            If the server cannot be reached or answers with an error.
        """
        rows = self._http_call("GET", "/api/instruments", None).json()["instruments"]
        columns = ["ticker", "resolution", "rows", "first", "last", "timezone", "source", "last_fetched"]
        frame = pd.DataFrame(rows, columns=columns)
        for column in ("first", "last", "last_fetched"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame

    def health(self) -> dict[str, Any]:
        """The server's ``/api/health`` answer (version, protocol, cached instruments)."""
        return self._http_call("GET", "/api/health", None).json()

    def _http_call(self, method: str, path: str, ticker: str | None, **kwargs: Any) -> requests.Response:
        try:
            response = self._http.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise RequestTimeoutError(
                f"Request timeout: no reply from {self.url} for {ticker or path} within {self.timeout:g} s",
                ticker=ticker,
            ) from exc
        except requests.RequestException as exc:
            raise ConnectionFailedError(
                f"Failed to connect to the server at {self.url}: {exc}. Is it running (`python -m server`)?",
                details={"url": self.url},
            ) from exc
        if response.status_code >= 400:
            try:
                error = error_from_payload(response.json()["error"])
            except (ValueError, KeyError, TypeError):
                error = DataProviderError(f"HTTP {response.status_code} from {path}: {response.text[:200]}")
            error.ticker = error.ticker or ticker
            raise error
        return response
