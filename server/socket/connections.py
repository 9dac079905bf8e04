"""Per-connection state on the server: send lock, cancel events, event meter, requests in flight, unsent replies."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from dataprovider.errors import ServerBusyError
from server.socket.limits import Limits, Outbox, TokenBucket

__all__ = ["ClientRegistry"]

logger = logging.getLogger(__name__)

#: How often a client's thread looks again at replies its client has not read yet.
_DRAIN_POLL_SECONDS = 0.02


@dataclass
class _Client:
    bucket: TokenBucket
    outbox: Outbox | None
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    guard: threading.Lock = field(default_factory=threading.Lock)  # bucket and in_flight
    in_flight: int = 0
    running: dict[str, threading.Event] = field(default_factory=dict)


class ClientRegistry:
    """What the server keeps per connected client (keyed by Socket.IO sid), and the per-client limits.

    A message with binary attachments goes out as several packets, and
    python-socketio does not keep two threads' packets apart, so each client has
    a send lock. Requests that may take a while have a cancel event from the
    moment they are accepted (queued or running), set when the client cancels
    them or disconnects. Each client's events are metered, its requests in
    flight counted, and its unsent replies watched, as ``limits`` says. A client
    is known from :meth:`add` until :meth:`forget`.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._clients: dict[str, _Client] = {}
        self._guard = threading.Lock()

    def _get(self, sid: str) -> _Client | None:
        with self._guard:
            return self._clients.get(sid)

    def add(self, sid: str, outbox: Outbox | None = None) -> None:
        """A client connected; ``outbox`` shows its unsent replies (None: not watched)."""
        bucket = TokenBucket(self.limits.events_per_second, self.limits.event_burst)
        with self._guard:
            self._clients.setdefault(sid, _Client(bucket, outbox))

    def send_lock(self, sid: str) -> threading.Lock:
        """The lock to hold while sending one message to ``sid`` (a throwaway one once it has left)."""
        client = self._get(sid)
        return client.send_lock if client is not None else threading.Lock()

    def take_event(self, sid: str) -> None:
        """Meter one event of ``sid``.

        Raises
        ------
        ServerBusyError
            If the client is sending events faster than ``limits`` allows.
        """
        client = self._get(sid)
        if client is None:
            return
        with client.guard:
            wait = client.bucket.take()
        if wait:
            rate, burst = self.limits.events_per_second, self.limits.event_burst
            raise ServerBusyError(
                f"this connection sends more than {rate:g} events per second (bursts of {burst}): "
                f"wait {wait:.3f} s, and wait for replies before sending more requests",
                details={"events_per_second": rate, "burst": burst, "retry_after": round(wait, 3)},
            )

    def begin(self, sid: str) -> None:
        """A request of ``sid`` is accepted: it is in flight until :meth:`end`.

        Raises
        ------
        ServerBusyError
            If the client already has ``limits.max_in_flight`` requests in flight.
        """
        client = self._get(sid)
        if client is None:
            return
        limit = self.limits.max_in_flight
        with client.guard:
            if client.in_flight >= limit:
                raise ServerBusyError(
                    f"{client.in_flight} requests are already in flight on this connection (the limit is "
                    f"{limit}): wait for their replies before sending more",
                    details={"in_flight": client.in_flight, "max": limit},
                )
            client.in_flight += 1

    def end(self, sid: str) -> None:
        """A request of ``sid`` had its final reply."""
        client = self._get(sid)
        if client is not None:
            with client.guard:
                client.in_flight -= 1

    def in_flight(self, sid: str) -> int:
        """Requests of ``sid`` accepted and not yet answered (0 once it has left)."""
        client = self._get(sid)
        return client.in_flight if client is not None else 0

    def behind(self, sid: str) -> bool:
        """Whether ``sid`` has more unsent replies than ``limits.max_unsent_bytes`` (pushed bars skip it then)."""
        client = self._get(sid)
        outbox = client.outbox if client is not None else None
        return outbox is not None and outbox.unsent_bytes() >= self.limits.max_unsent_bytes

    def wait_for_reader(self, sid: str) -> bool:
        """Wait while ``sid`` has more unsent replies than ``limits.max_unsent_bytes``.

        Returns False if the client is disconnected instead: it went away, or
        its replies did not drain within ``limits.slow_client_seconds`` (then
        it is disconnected here and its unsent replies are dropped).
        """
        client = self._get(sid)
        outbox = client.outbox if client is not None else None
        if outbox is None:
            return client is not None
        deadline = None
        while (unsent := outbox.unsent_bytes()) >= self.limits.max_unsent_bytes:
            if outbox.closed:
                return False
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.limits.slow_client_seconds
            elif now >= deadline:
                logger.warning(
                    "client %s left %.1f MB of replies unread for %g s: disconnecting it",
                    sid,
                    unsent / 2**20,
                    self.limits.slow_client_seconds,
                )
                outbox.close()
                return False
            time.sleep(_DRAIN_POLL_SECONDS)
        return True

    def accept(self, sid: str, request_id: str) -> threading.Event:
        """Register a request that may be cancelled; returns its cancel event (already set if the client left)."""
        cancelled = threading.Event()
        with self._guard:
            client = self._clients.get(sid)
            if client is None:
                cancelled.set()
            else:
                client.running[request_id] = cancelled
        return cancelled

    def done(self, sid: str, request_id: str) -> None:
        """The request is answered: nothing left to cancel."""
        with self._guard:
            client = self._clients.get(sid)
            if client is not None:
                client.running.pop(request_id, None)

    def cancel(self, sid: str, request_id: object) -> bool:
        """Cancel one request of ``sid``; False if it is not waiting or running."""
        with self._guard:
            client = self._clients.get(sid)
            event = client.running.get(request_id) if client is not None and isinstance(request_id, str) else None
        if event is not None:
            event.set()
        return event is not None

    def forget(self, sid: str) -> None:
        """The client left: cancel everything it was still waiting for.

        Replies it left unread beyond ``limits.max_unsent_bytes`` (a client
        that stopped reading, dropped by Engine.IO's ping timeout) are dropped and
        its connection closed, so that they do not stay in memory.
        """
        with self._guard:
            client = self._clients.pop(sid, None)
        if client is None:
            return
        for event in list(client.running.values()):
            event.set()
        if client.outbox is not None and client.outbox.unsent_bytes() >= self.limits.max_unsent_bytes:
            client.outbox.close()
