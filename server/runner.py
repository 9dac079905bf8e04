"""Running the app on Werkzeug's threaded server (the server Flask-SocketIO's threading mode uses).

``ServerHandle`` binds its own listening socket at construction (Werkzeug would
exit the process on a taken port), so a taken port is a clear ``PortInUseError``;
it can serve from a background thread and shut down cleanly (tests and the CLI
both use it).
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from http import HTTPStatus

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from dataprovider.errors import InvalidRequestError, code_for_http_status
from dataprovider.protocol import error_reply

__all__ = ["MAX_HEADERS", "MAX_LINE_BYTES", "PortInUseError", "ServerHandle"]

logger = logging.getLogger(__name__)

#: How often the accept loop checks for a stop request (what :meth:`ServerHandle.stop` waits at most).
_POLL_SECONDS = 0.05
# Longest reason quoted from the HTTP layer in an error message.
_REASON_CHARS = 200
#: Limits of Python's HTTP server under Werkzeug (http.client's _MAXLINE and _MAXHEADERS): longest
#: request or header line in bytes, and most headers.
MAX_LINE_BYTES = 65536
MAX_HEADERS = 100
# Those limits, said where they are hit.
_LIMITS = {
    414: f"the request line (method, URL, version) may be at most {MAX_LINE_BYTES} bytes: "
    "send many tickers to POST /api/batch",
    431: f"a header line may be at most {MAX_LINE_BYTES} bytes, and a request may have at most {MAX_HEADERS} headers",
}


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler with TCP_NODELAY, closing the connection when a WebSocket session ends,
    and answering the requests it refuses itself with the protocol's JSON errors.

    Without the close, the handler would read the peer's WebSocket close frame as
    the next HTTP request and log it as a bad request.
    """

    def setup(self) -> None:
        super().setup()
        # Replies go out as several small writes (a header, then attachments): without
        # TCP_NODELAY, Nagle's algorithm and the peer's delayed ACK stall each one ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run_wsgi(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.close_connection = True
        super().run_wsgi()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request the HTTP layer refuses before the app sees it (a URL over 65536 bytes,
        an unreadable request line, too many headers) with the protocol's JSON error, not HTML."""
        status = HTTPStatus(code)
        self.log_error("code %d, message %s", code, message)
        reason = _LIMITS.get(code) or (message or status.description)[:_REASON_CHARS]  # it may quote the request line
        error = InvalidRequestError(f"{status.phrase}: {reason}", code=code_for_http_status(code))
        body = json.dumps({"error": error_reply(None, error)}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class PortInUseError(OSError):
    """The port is taken, usually by another dataprovider server."""


class ServerHandle:
    """A bound, not yet serving, threaded WSGI server.

    Examples
    --------
    Serve an offline app with an empty cache on a free port (0) from a background thread:

    >>> import json, tempfile, urllib.request
    >>> from server.app import create_app
    >>> from server.settings import Settings
    >>> tmp = tempfile.TemporaryDirectory()
    >>> server_app = create_app(Settings(data_dir=tmp.name, offline=True, load_samples=False))
    >>> handle = ServerHandle(server_app.flask, "127.0.0.1", 0)
    >>> handle.start()
    >>> handle.url == f"http://127.0.0.1:{handle.port}"
    True
    >>> with urllib.request.urlopen(f"{handle.url}/api/health") as reply:
    ...     json.load(reply)["cached_instruments"]
    0
    >>> handle.stop()
    >>> server_app.close()
    >>> tmp.cleanup()
    """

    def __init__(self, app, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            listener = socket.create_server((host, port), family=family)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    exc.errno,
                    f"port {port} on {host} is already in use: is another dataprovider server running? "
                    "Stop it, or start this one with --port <another port>",
                ) from None
            raise
        with listener:  # Werkzeug serves a duplicate of this socket's descriptor
            self._server: BaseWSGIServer = make_server(
                host, port, app, threaded=True, request_handler=_RequestHandler, fd=listener.fileno()
            )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful after asking for port 0)."""
        return self._server.port

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://{self._server.host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called from another one."""
        self._server.serve_forever(poll_interval=_POLL_SECONDS)

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
