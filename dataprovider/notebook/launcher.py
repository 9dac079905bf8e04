"""Start a local server from a notebook when none is running (and server processes in general).

Tutorials call :func:`ensure_server` first: it uses the server at ``url`` (or
``$DATAPROVIDER_URL``, else http://127.0.0.1:5001) if one answers, and otherwise
starts ``python -m server`` for that port in the background, with the bundled
sample data, and stops it when the Python process exits. :func:`start_server`,
:func:`start_process` and :func:`stop` are the pieces it is made of; the
benchmarks and tests start their servers with them too.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from dataprovider.protocol.events import DEFAULT_URL

__all__ = ["ensure_server", "free_port", "start_process", "start_server", "stop"]

logger = logging.getLogger(__name__)

#: Servers started here, by URL (stopped when the process exits).
STARTED: dict[str, subprocess.Popen] = {}


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_process(
    command: list[str], ready_url: str, log: Path, *, timeout: float = 60.0, **popen: Any
) -> subprocess.Popen:
    """Start ``command`` with its output in ``log`` and wait until ``ready_url`` answers (any status).

    Raises
    ------
    RuntimeError
        If it exits or does not answer within ``timeout`` seconds (it is then
        stopped); the message holds the end of its log.
    """
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **popen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(ready_url):
            return process
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"{' '.join(command)} did not start:\n{log.read_text(errors='replace')[-2000:]}")


def start_server(port: int, *arguments: str, log: Path, timeout: float = 60.0, **popen: Any) -> subprocess.Popen:
    """Start ``python -m server --port PORT ARGUMENTS...`` and wait until it answers on 127.0.0.1."""
    command = [sys.executable, "-m", "server", "--port", str(port), *arguments]
    return start_process(command, f"http://127.0.0.1:{port}/api/health", log, timeout=timeout, **popen)


def ensure_server(
    url: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    startup_timeout: float = 60.0,
    arguments: Sequence[str] = (),
) -> str:
    """Return the URL of a running server, starting one on ``url``'s port if none answers.

    Parameters
    ----------
    url : str, optional
        Where the server should be; default ``$DATAPROVIDER_URL``, else
        http://127.0.0.1:5001. Only loopback URLs are started here.
    data_dir : path-like, optional
        The cache directory of a server started here (default: the server's own
        default, see ``python -m server --help``).
    startup_timeout : float
        Seconds to wait for a started server to answer.
    arguments : sequence of str
        More ``python -m server`` options for a server started here, such as
        ``("--replay", "5")``; a server that already answers is used as it is.

    Raises
    ------
    RuntimeError
        If the server could not be started; the message holds its output.

    Examples
    --------
    >>> url = ensure_server()                                           # doctest: +SKIP
    >>> provider = DataProviderLocal(url)                               # doctest: +SKIP
    >>> url = ensure_server(arguments=["--replay", "5"])                # doctest: +SKIP
    """
    url = (url or os.environ.get("DATAPROVIDER_URL") or DEFAULT_URL).rstrip("/")
    if _answers(url + "/api/health"):
        return url
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise RuntimeError(f"no server answers at {url}, and only a local one can be started from here")
    options = ["--log-file", "", *(["--data-dir", os.fspath(data_dir)] if data_dir is not None else []), *arguments]
    log = Path(tempfile.gettempdir()) / f"dataprovider-server-{parts.port}.log"
    process = start_server(parts.port or 80, *options, log=log, timeout=startup_timeout)
    STARTED[url] = process
    atexit.register(stop, process)
    logger.info("started a dataprovider server at %s (pid %d, log %s)", url, process.pid, log)
    return url


def stop(process: subprocess.Popen) -> None:
    """Stop a server process (SIGTERM, then kill after 10 s)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
