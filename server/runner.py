"""Running the app on Werkzeug's threaded server (the server Flask-SocketIO's threading mode uses).

``ServerHandle`` binds at construction, so a taken port fails at once with a
clear message, and it can be served from a background thread and shut down
cleanly (tests and the CLI both use it).
"""

from __future__ import annotations

import errno
import logging
import threading

from werkzeug.serving import BaseWSGIServer, make_server

__all__ = ["PortInUseError", "ServerHandle"]

logger = logging.getLogger(__name__)


class PortInUseError(OSError):
    """The port is taken, usually by another dataprovider server."""


class ServerHandle:
    """A bound, not yet serving, threaded WSGI server.

    Examples
    --------
    >>> handle = ServerHandle(server_app.flask, "127.0.0.1", 0)        # doctest: +SKIP
    >>> handle.start()
    >>> handle.url
    'http://127.0.0.1:40123'
    >>> handle.stop()
    """

    def __init__(self, app, host: str, port: int) -> None:
        try:
            self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    exc.errno,
                    f"port {port} on {host} is already in use: is another dataprovider server running? "
                    "Stop it, or start this one with --port <another port>",
                ) from None
            raise
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful after asking for port 0)."""
        return self._server.server_port

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://{self._server.host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called from another one."""
        self._server.serve_forever()

    def start(self) -> None:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="dataprovider-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting connections and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
