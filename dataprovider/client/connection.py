"""One Socket.IO connection to the server, shared by every request of a client.

Requests are matched to replies by ``request_id``, so many can be in flight on
one connection. Incoming messages are handled in order on the connection's read
loop, where handlers only put each reply on its request's queue; the thread that
made the request drains it and runs the user's callbacks. The connection opens on the first request and, unless
the user holds it open (:meth:`SocketConnection.open` with ``hold=True``),
closes when the last request that asked for ``auto_disconnect`` ends.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import engineio
import socketio
import websocket
from engineio import packet as engineio_packet
from websocket._abnf import frame_buffer

from dataprovider import protocol
from dataprovider.errors import ConnectionFailedError, RequestTimeoutError, error_from_payload

__all__ = ["DISCONNECTED", "RequestTicket", "SocketConnection"]

logger = logging.getLogger("dataprovider.client")

_REPLY_EVENTS = (
    protocol.DATA_RESPONSE,
    protocol.DATA_ERROR,
    protocol.DATA_STATUS,
    protocol.BATCH_RESPONSE,
    protocol.BATCH_ERROR,
    protocol.BATCH_PROGRESS,
    protocol.SUBSCRIBED,
    protocol.UNSUBSCRIBED,
    protocol.SUBSCRIPTION_ERROR,
    protocol.BAR_UPDATE,
)
_FINAL_REPLIES = (protocol.DATA_RESPONSE, protocol.BATCH_RESPONSE, protocol.SUBSCRIBED, protocol.UNSUBSCRIBED)
_FINAL_ERRORS = (protocol.DATA_ERROR, protocol.BATCH_ERROR, protocol.SUBSCRIPTION_ERROR)
#: What a listener (see SocketConnection.listen) is told besides messages: the connection went down.
DISCONNECTED = "disconnected"
_LIVE_EVENTS = (protocol.SUBSCRIBED, protocol.BAR_UPDATE, protocol.SUBSCRIPTION_ERROR)
_LOST = "connection lost"
_ABANDONED = "abandoned"


class _LargeReadFrameBuffer(frame_buffer):
    """websocket-client's frame reader, reading up to 1 MB per ``recv`` call instead of 16 KB.

    A large frame arrives in messages of nearly 1 MB; at 16 KB per call, the
    Python-level loop around ``recv`` costs more than moving the bytes.
    """

    _READ_BYTES = 1 << 20

    def recv_strict(self, bufsize: int) -> bytes:
        """Exactly ``bufsize`` bytes (the upstream method, with larger reads and no join of one part)."""
        shortage = bufsize - sum(len(part) for part in self.recv_buffer)
        while shortage > 0:
            part = self.recv(min(self._READ_BYTES, shortage))  # raises when the peer closes
            self.recv_buffer.append(part)
            shortage -= len(part)
        unified = self.recv_buffer[0] if len(self.recv_buffer) == 1 else b"".join(self.recv_buffer)
        if shortage == 0:
            self.recv_buffer = []
            return unified
        self.recv_buffer = [unified[bufsize:]]
        return unified[:bufsize]


class _LargeReadWebSocket(websocket.WebSocket):
    """websocket-client's WebSocket with :class:`_LargeReadFrameBuffer`."""

    def __init__(self, *args, skip_utf8_validation: bool = False, **kwargs) -> None:
        super().__init__(*args, skip_utf8_validation=skip_utf8_validation, **kwargs)
        self.frame_buffer = _LargeReadFrameBuffer(self._recv, skip_utf8_validation)


class _InOrderEngineIOClient(engineio.Client):
    """Engine.IO client that hands each incoming message to Socket.IO on the read loop, in order.

    The stock sync client starts a thread per message, so the packets of one
    Socket.IO message with binary attachments (a header, then one packet per
    attachment) can be assembled in the wrong order, or an attachment can be
    taken for a header. Our handlers only put replies on a queue, so running
    them on the read loop costs nothing and keeps every message whole. Outgoing
    messages are written on the sending thread (see :meth:`_send_packet`).
    """

    def _trigger_event(self, event, *args, **kwargs):
        kwargs.pop("run_async", None)
        return super()._trigger_event(event, *args, **kwargs)

    def _send_packet(self, pkt):
        """Write a message to the WebSocket on the caller's thread, instead of handing it to the writer thread.

        The stock client queues every packet for its writer thread: one more
        thread switch in each request's round trip. WebSocket frames are written
        whole under websocket-client's lock, so any thread may write them. Other
        packets (pongs, and anything before the WebSocket is up) still go through
        the queue, which keeps the writer thread busy enough that it does not
        give up on an idle connection.
        """
        ws = self.ws
        direct = self.state == "connected" and self.current_transport == "websocket" and ws is not None
        if not direct or pkt.packet_type != engineio_packet.MESSAGE:
            return super()._send_packet(pkt)
        encoded = pkt.encode()
        try:
            if pkt.binary:
                ws.send_binary(encoded)
            else:
                ws.send(encoded)
        except (websocket.WebSocketConnectionClosedException, OSError):
            # As the writer thread does: the read loop sees the connection go, and requests waiting fail.
            logger.debug("could not send a message: the connection is closed", exc_info=True)
        return None

    def disconnect(self, abort=False, reason=None):
        """Disconnect; on the read loop itself (the server said goodbye) without joining it."""
        on_read_loop = threading.current_thread() is self.read_loop_task
        return super().disconnect(abort=abort or on_read_loop, reason=reason)


class _InOrderSocketIOClient(socketio.Client):
    """python-socketio's sync client on :class:`_InOrderEngineIOClient`."""

    def _engineio_client_class(self):
        return _InOrderEngineIOClient


class RequestAbandoned(Exception):
    """The caller stopped waiting (an awaiting task was cancelled)."""


@dataclass
class RequestTicket:
    """A handle on one request in flight, so another thread can abandon it.

    ``abandon()`` makes the waiting thread stop at once and the server drop the
    rest of the request's work.
    """

    request_id: str | None = None
    abandoned: bool = False
    _replies: queue.SimpleQueue | None = field(default=None, repr=False)

    def abandon(self) -> None:
        """Stop waiting for the request (safe from any thread, before or after it starts)."""
        self.abandoned = True
        if self._replies is not None:
            self._replies.put((_ABANDONED, None))


class SocketConnection:
    """The client's Socket.IO connection: open/close, send a request, wait for its reply.

    Parameters
    ----------
    url : str
        The server's base URL.
    timeout : float
        Seconds without any message about a request before it times out.
    token : str, optional
        The server's token, sent in the connection's ``auth`` payload.
    """

    def __init__(self, url: str, timeout: float, token: str | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.token = token
        self._refusal: Any = None
        self.server_info: dict[str, Any] = {}
        self._pending: dict[str, queue.SimpleQueue] = {}
        self._pending_guard = threading.Lock()
        self._state_guard = threading.RLock()  # the socket's life, the in-flight count, the hold flag
        self._emit_guard = threading.Lock()  # python-socketio's emit is not thread-safe
        self._in_flight = 0
        self._held = False
        self._retained = 0  # live subscriptions keeping the connection open
        self._listeners: list[Callable[[str, Any], None]] = []
        self._ids = itertools.count(1)
        self._tag = uuid.uuid4().hex[:8]
        self._sio = self._new_socket()

    # ------------------------------------------------------------ lifecycle
    def _new_socket(self) -> socketio.Client:
        # Text frames are JSON we decode anyway: websocket-client's pure-Python UTF-8
        # check of every frame only costs time.
        options = {"skip_utf8_validation": True, "class_": _LargeReadWebSocket}
        sio = _InOrderSocketIOClient(reconnection=False, handle_sigint=False, websocket_extra_options=options)
        for event in _REPLY_EVENTS:
            sio.on(event, self._enqueue_handler(event))
        sio.on(protocol.CONNECTION_RESPONSE, self._on_connection_response)
        sio.on("disconnect", self._on_disconnect)
        sio.on("connect_error", self._on_connect_error)
        return sio

    @property
    def connected(self) -> bool:
        """Whether the connection is up."""
        return self._sio.connected

    def open(self, *, hold: bool) -> None:
        """Connect if not connected; ``hold`` keeps it open until :meth:`close`.

        Raises
        ------
        ConnectionFailedError
            If the server cannot be reached.
        """
        with self._state_guard:
            if not self._sio.connected:
                self._sio = self._new_socket()
                self._refusal = None
                auth = {"token": self.token} if self.token is not None else None
                try:
                    self._sio.connect(self.url, auth=auth, transports=["websocket"], wait_timeout=self.timeout)
                except (socketio.exceptions.ConnectionError, OSError, ValueError) as exc:
                    reason = self._refusal.get("data") if isinstance(self._refusal, dict) else None
                    if isinstance(reason, dict) and "code" in reason:
                        raise error_from_payload(reason) from exc  # the server said why (UNAUTHORIZED)
                    raise ConnectionFailedError(
                        f"Failed to connect to WebSocket server at {self.url}: {exc}. "
                        "Is the server running? Start it with `python -m server` (or `make serve`).",
                        details={"url": self.url},
                    ) from exc
            self._held = self._held or hold

    def close(self) -> None:
        """Disconnect (no-op if closed); requests still waiting fail with CONNECTION_FAILED."""
        with self._state_guard:
            self._held = False
            if self._sio.connected:
                self._sio.disconnect()

    def retain(self) -> None:
        """Keep the connection open for one more user (a live subscription) until :meth:`release`."""
        with self._state_guard:
            self._retained += 1

    def release(self) -> None:
        """One user fewer; the connection closes when nothing else keeps it open."""
        with self._state_guard:
            self._retained = max(0, self._retained - 1)
            if not self._in_use() and self._sio.connected:
                self._sio.disconnect()

    def listen(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(event, payload)`` for each live-bar message, and with DISCONNECTED when the connection drops.

        It runs on the connection's read loop, in the order messages arrive: it must only hand them on.
        """
        self._listeners.append(listener)

    def _in_use(self) -> bool:
        return self._in_flight > 0 or self._held or self._retained > 0

    # ------------------------------------------------------------- requests
    def request(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        ticker: str | None,
        auto_disconnect: bool,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        ticket: RequestTicket | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its final reply.

        ``on_progress`` receives each ``batch_progress`` payload, on this thread.
        If waiting ends early (timeout, Ctrl-C, ``ticket.abandon()``), the server
        is told to drop the request.

        Raises
        ------
        DataProviderError
            The server's error reply, REQUEST_TIMEOUT, or CONNECTION_FAILED.
        """
        request_id = f"{self._tag}-{next(self._ids)}"
        replies: queue.SimpleQueue = queue.SimpleQueue()  # wakes the waiting thread faster than queue.Queue
        if ticket is not None:
            ticket.request_id, ticket._replies = request_id, replies
            if ticket.abandoned:  # cancelled before this thread got going
                raise RequestAbandoned(ticker or "the batch")
        with self._pending_guard:
            self._pending[request_id] = replies
        with self._state_guard:
            self._in_flight += 1
        finished = False
        try:
            self.open(hold=False)
            with self._emit_guard:
                self._sio.emit(event, {**payload, "request_id": request_id})
            reply = self._wait(replies, ticker, on_progress)
            finished = True
            return reply
        finally:
            if not finished:
                self._cancel(request_id)
            with self._pending_guard:
                self._pending.pop(request_id, None)
            with self._state_guard:  # held across the check and the close: no request slips in between
                self._in_flight -= 1
                if auto_disconnect and not self._in_use() and self._sio.connected:
                    self._sio.disconnect()

    def _wait(
        self, replies: queue.SimpleQueue, ticker: str | None, on_progress: Callable[[dict[str, Any]], None] | None
    ) -> dict[str, Any]:
        """Drain one request's queue until its final reply; every message restarts the timeout."""
        subject = ticker or "the batch"
        while True:
            try:
                event, reply = replies.get(timeout=self.timeout)
            except queue.Empty:
                raise RequestTimeoutError(
                    f"Request timeout: no reply from {self.url} for {subject} within {self.timeout:g} s",
                    ticker=ticker,
                ) from None
            if event == _LOST:
                raise ConnectionFailedError(
                    f"the connection to {self.url} was lost before the reply for {subject} came", ticker=ticker
                )
            if event == _ABANDONED:
                raise RequestAbandoned(subject)
            if event in _FINAL_REPLIES:
                return reply
            if event in _FINAL_ERRORS:
                error = error_from_payload(reply)
                error.ticker = error.ticker or ticker
                raise error
            if event == protocol.BATCH_PROGRESS and on_progress is not None:
                on_progress(reply)
            elif event == protocol.DATA_STATUS:
                logger.debug("%s: %s", subject, reply.get("status"))

    def _cancel(self, request_id: str) -> None:
        """Ask the server to drop the rest of a request nobody waits for any more."""
        try:
            with self._emit_guard:
                if self._sio.connected:
                    self._sio.emit(protocol.CANCEL, {"request_id": request_id})
        except Exception:  # the connection may be going away; the server cleans up on disconnect
            logger.debug("could not cancel request %s", request_id, exc_info=True)

    # ------------------------------------------------------------- handlers
    def _enqueue_handler(self, event: str) -> Callable[[Any], None]:
        def handler(payload: Any = None) -> None:
            request_id = payload.get("request_id") if isinstance(payload, dict) else None
            with self._pending_guard:
                replies = self._pending.get(request_id)
            if replies is not None:
                replies.put((event, payload))
            elif event not in _LIVE_EVENTS:
                logger.debug("dropping %s for request %s, which is no longer awaited", event, request_id)
            if event in _LIVE_EVENTS:
                for listener in self._listeners:
                    listener(event, payload)

        return handler

    def _on_connect_error(self, data: Any = None) -> None:
        self._refusal = data

    def _on_connection_response(self, payload: dict[str, Any]) -> None:
        self.server_info = dict(payload or {})

    def _on_disconnect(self, *args: Any) -> None:
        with self._pending_guard:
            waiting = list(self._pending.values())
        for replies in waiting:
            replies.put((_LOST, None))
        for listener in self._listeners:
            listener(DISCONNECTED, None)
