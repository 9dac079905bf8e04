"""How much one client may ask of the server: the limits, and the pieces that enforce them.

* :class:`Limits` holds the numbers (``python -m server`` flags set them).
* :class:`TokenBucket` meters one connection's events per second.
* :class:`FairQueue` puts requests that may wait (downloads, batches) on the
  worker threads, with a bound on how many may wait, taking turns between
  clients so that one client's pile of requests does not delay everyone else's.
* :class:`Outbox` measures the replies queued for one client that it has not
  read yet (:func:`count_unsent` makes the queues count), and closes the
  connection of a client that stopped reading.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from dataprovider.errors import ServerBusyError

__all__ = ["FairQueue", "Limits", "Outbox", "PacketQueue", "TokenBucket", "count_unsent"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Per-connection and server-wide limits (docs/PROTOCOL.md, "Limits").

    Attributes
    ----------
    max_in_flight : int
        Requests one connection may have unanswered at once; one more is
        answered BUSY at once. A request counts from its arrival to its final
        reply.
    events_per_second, event_burst : float, int
        Each connection's events are metered by a token bucket of
        ``event_burst`` tokens refilled at ``events_per_second``; an event
        finding it empty is answered BUSY at once. ``cancel`` is never metered.
        The default is above what a client that waits for each reply reaches
        (a round trip costs about a millisecond); it stops clients that send
        without waiting.
    max_queued : int
        Requests waiting for a worker thread, all clients together; one more is
        answered BUSY at once. Above ``max_in_flight``, so one connection can
        never fill the queue by itself.
    max_unsent_bytes : int
        Replies queued for a client that it has not read yet. Past this, the
        server takes no further event from that client until they drain (its
        other requests wait their turn; nobody else is affected).
    slow_client_seconds : float
        How long such a client may stay past ``max_unsent_bytes``: then it is
        disconnected and its unsent replies are dropped (it sees a lost
        connection). Keep it below Engine.IO's ping timeout (20 s), which would
        drop it anyway.
    """

    max_in_flight: int = 64
    events_per_second: float = 1000.0
    event_burst: int = 1000
    max_queued: int = 256
    max_unsent_bytes: int = 16 * 2**20
    slow_client_seconds: float = 15.0


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second.

    Not thread-safe: the caller holds a lock (each client has one).

    Examples
    --------
    >>> now = [0.0]
    >>> bucket = TokenBucket(rate=2, burst=1, clock=lambda: now[0])
    >>> bucket.take(), bucket.take()
    (0.0, 0.5)
    >>> now[0] = 0.5
    >>> bucket.take()
    0.0
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> float:
        """Spend a token: 0.0 if there was one, else the seconds until there will be (nothing is spent)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class FairQueue:
    """Jobs run on an executor's threads, at most ``max_queued`` waiting, clients served in turn.

    Every :meth:`submit` hands the executor one task, and each task runs the
    next job in round-robin order over the clients that have jobs waiting, not
    necessarily the job it was submitted with: a client with many jobs waiting
    gets one thread at a time in turn with the others, instead of keeping every
    thread busy until its pile is done.

    Examples
    --------
    One worker thread, busy with client a's first job while a queues two more and b one:

    >>> import threading
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> ran, started, release = [], threading.Event(), threading.Event()
    >>> pool = ThreadPoolExecutor(max_workers=1)
    >>> jobs = FairQueue(pool, max_queued=3)
    >>> jobs.submit("a", lambda: (started.set(), release.wait(), ran.append("a1")))
    >>> _ = started.wait()
    >>> for name in ("a2", "a3"):
    ...     jobs.submit("a", lambda name=name: ran.append(name))
    >>> jobs.submit("b", lambda: ran.append("b1"))
    >>> jobs.waiting
    3
    >>> jobs.submit("c", lambda: None)
    Traceback (most recent call last):
    ...
    dataprovider.errors.ServerBusyError: BUSY: the server has 3 requests waiting for a worker (its limit): ...
    >>> release.set()
    >>> pool.shutdown(wait=True)
    >>> ran  # b's job ran before a's last one
    ['a1', 'a2', 'b1', 'a3']
    """

    def __init__(self, executor: Executor, max_queued: int) -> None:
        self.max_queued = max_queued
        self._executor = executor
        self._waiting: OrderedDict[Hashable, deque[Callable[[], Any]]] = OrderedDict()
        self._count = 0
        self._guard = threading.Lock()

    @property
    def waiting(self) -> int:
        """Jobs not yet started."""
        return self._count

    def submit(self, client: Hashable, job: Callable[[], Any]) -> None:
        """Queue ``job`` for ``client``.

        Raises
        ------
        ServerBusyError
            If ``max_queued`` jobs are already waiting (``job`` is not queued).
        """
        with self._guard:
            if self._count >= self.max_queued:
                raise ServerBusyError(
                    f"the server has {self._count} requests waiting for a worker (its limit): retry in a moment",
                    details={"queued": self._count, "max": self.max_queued},
                )
            self._waiting.setdefault(client, deque()).append(job)
            self._count += 1
        self._executor.submit(self._run_next)

    def _run_next(self) -> None:
        with self._guard:
            client, jobs = next(iter(self._waiting.items()))
            job = jobs.popleft()
            if jobs:
                self._waiting.move_to_end(client)  # its next job waits for the other clients' turns
            else:
                del self._waiting[client]
            self._count -= 1
        job()


def _packet_bytes(packet: Any) -> int:
    data = getattr(packet, "data", None)
    return len(data) if isinstance(data, str | bytes | bytearray) else 0


class PacketQueue(queue.Queue):
    """A connection's queue of outgoing Engine.IO packets that keeps count of the bytes it holds."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self.bytes = 0

    def _put(self, item: Any) -> None:
        super()._put(item)
        self.bytes += _packet_bytes(item)

    def _get(self) -> Any:
        item = super()._get()
        self.bytes -= _packet_bytes(item)
        return item


def count_unsent(eio_server: Any) -> None:
    """Give every connection ``eio_server`` (a python-engineio server) opens from now on a :class:`PacketQueue`.

    Engine.IO sockets take their outgoing queue from the server's
    ``create_queue()``; this makes it a queue that counts its bytes, so that an
    :class:`Outbox` can tell how much a client has not read in constant time.
    """
    eio_server.create_queue = PacketQueue


def _ignore_packet(packet: Any) -> None:
    """Drop an incoming packet (of a connection being closed)."""


class Outbox:
    """What the server has queued for one client and not yet written to its connection.

    python-socketio hands each outgoing packet to the client's Engine.IO socket,
    whose ``queue`` a writer thread per connection drains onto the WebSocket
    (taking all the packets queued at once); when the client does not read, that
    writer blocks and the queue grows. This reads that queue, a
    :class:`PacketQueue` (see :func:`count_unsent`), and closes the socket with
    python-engineio's ``Socket.close(wait, abort)``. It also holds the client's
    TCP connection when it came straight in as a WebSocket (Werkzeug's
    ``werkzeug.socket``), so that closing can unblock the writer: a writer blocked
    on a connection upgraded from long-polling stays so until the peer goes.
    """

    def __init__(self, eio_socket: Any, connection: socket.socket | None = None) -> None:
        self._socket = eio_socket
        self._connection = connection

    @classmethod
    def of(cls, server: Any, sid: str, environ: dict[str, Any]) -> Outbox | None:
        """The outbox of the client ``sid`` of a python-socketio ``server`` (None if its queue is not counted)."""
        eio_socket = server.eio.sockets.get(server.manager.eio_sid_from_sid(sid, "/"))
        if not isinstance(getattr(eio_socket, "queue", None), PacketQueue):
            return None
        direct = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        connection = environ.get("werkzeug.socket") if direct else None
        return cls(eio_socket, connection if isinstance(connection, socket.socket) else None)

    @property
    def closed(self) -> bool:
        """Whether the connection is closed or closing."""
        return bool(self._socket.closed or self._socket.closing)

    def unsent_bytes(self) -> int:
        """Bytes of the packets queued and not yet taken by the writer."""
        return self._socket.queue.bytes

    def close(self) -> None:
        """Drop the unsent packets and close the connection (the client sees it lost)."""
        packets = self._socket.queue
        while True:
            try:
                packets.get_nowait()
            except queue.Empty:
                break
            packets.task_done()
        self._socket.close(wait=False, abort=True)
        # What the client sent before is still buffered by the transport, which would hand
        # each message on to python-socketio (that logs every one as from an unknown client).
        self._socket.receive = _ignore_packet
        if self._connection is not None:
            try:
                self._connection.shutdown(socket.SHUT_RDWR)  # the writer's blocked send fails, and it exits
            except OSError:  # already gone
                pass
