"""Per-connection state on the server: a send lock and the requests each client may still cancel."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["ClientRegistry"]


@dataclass
class _Client:
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    running: dict[str, threading.Event] = field(default_factory=dict)


class ClientRegistry:
    """What the server keeps per connected client (keyed by Socket.IO sid).

    A message with binary attachments goes out as several packets, and
    python-socketio does not keep two threads' packets apart, so each client has
    a send lock. Requests that may take a while have a cancel event from the
    moment they are accepted (queued or running), set when the client cancels
    them or disconnects. A client is known from :meth:`add` until :meth:`forget`.
    """

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}
        self._guard = threading.Lock()

    def add(self, sid: str) -> None:
        """A client connected."""
        with self._guard:
            self._clients.setdefault(sid, _Client())

    def send_lock(self, sid: str) -> threading.Lock:
        """The lock to hold while sending one message to ``sid`` (a throwaway one once it has left)."""
        with self._guard:
            client = self._clients.get(sid)
        return client.send_lock if client is not None else threading.Lock()

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
        """The client left: cancel everything it was still waiting for."""
        with self._guard:
            client = self._clients.pop(sid, None)
        if client is not None:
            for event in list(client.running.values()):
                event.set()
