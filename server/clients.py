"""Per-connection state on the server: a send lock and the requests each client may still cancel."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
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
    a send lock. Requests in progress have a cancel event, set when the client
    cancels them or disconnects.
    """

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}
        self._guard = threading.Lock()

    def _client(self, sid: str) -> _Client:
        with self._guard:
            return self._clients.setdefault(sid, _Client())

    def send_lock(self, sid: str) -> threading.Lock:
        """The lock to hold while sending one message to ``sid``."""
        return self._client(sid).send_lock

    @contextlib.contextmanager
    def running(self, sid: str, request_id: str | None) -> Iterator[threading.Event]:
        """Register a request for the duration of the block; yields its cancel event."""
        cancelled = threading.Event()
        client = self._client(sid)
        if request_id is not None:
            client.running[request_id] = cancelled
        try:
            yield cancelled
        finally:
            if request_id is not None and client.running.get(request_id) is cancelled:
                del client.running[request_id]

    def cancel(self, sid: str, request_id: object) -> bool:
        """Cancel one request of ``sid``; False if it is not running."""
        event = self._client(sid).running.get(request_id) if isinstance(request_id, str) else None
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
