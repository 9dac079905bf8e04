"""A bare Flask-SocketIO server (threading mode, simple-websocket) that acknowledges 'echo' with its payload.

The floor for a Socket.IO round trip on this stack: ``python benchmarks/echo_server.py PORT``.
"""

from __future__ import annotations

import sys
import threading

from flask import Flask
from flask_socketio import SocketIO

from server.runner import ServerHandle


def main(port: int) -> None:
    """Serve until killed."""
    app = Flask("echo")
    socketio = SocketIO(app, async_mode="threading")
    socketio.on_event("echo", lambda payload: payload)
    handle = ServerHandle(app, "127.0.0.1", port)
    handle.start()
    threading.Event().wait()


if __name__ == "__main__":
    main(int(sys.argv[1]))
