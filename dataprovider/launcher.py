"""Start a local server from a notebook when none is running.

Tutorials call :func:`ensure_server` first: it uses the server at ``url`` (or
``$DATAPROVIDER_URL``, else http://127.0.0.1:5001) if one answers, and otherwise
starts ``python -m server`` for that port in the background, with the bundled
sample data, and stops it when the Python process exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .client import DEFAULT_URL

__all__ = ["ensure_server"]

logger = logging.getLogger(__name__)

#: Servers started here, by URL (stopped when the process exits).
STARTED: dict[str, subprocess.Popen] = {}


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/api/health", timeout=2).ok
    except requests.RequestException:
        return False


def ensure_server(
    url: str | None = None, *, data_dir: str | os.PathLike[str] | None = None, startup_timeout: float = 60.0
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

    Raises
    ------
    RuntimeError
        If the server could not be started; the message holds its output.

    Examples
    --------
    >>> url = ensure_server()                                           # doctest: +SKIP
    >>> provider = DataProviderLocal(url)
    """
    url = (url or os.environ.get("DATAPROVIDER_URL") or DEFAULT_URL).rstrip("/")
    if _answers(url):
        return url
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise RuntimeError(f"no server answers at {url}, and only a local one can be started from here")
    command = [sys.executable, "-m", "server", "--port", str(parts.port or 80), "--log-file", ""]
    if data_dir is not None:
        command += ["--data-dir", os.fspath(data_dir)]
    log = Path(tempfile.gettempdir()) / f"dataprovider-server-{parts.port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    STARTED[url] = process
    atexit.register(_stop, process)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if _answers(url):
            logger.info("started a dataprovider server at %s (pid %d, log %s)", url, process.pid, log)
            return url
        if process.poll() is not None:
            break
        time.sleep(0.2)
    _stop(process)
    raise RuntimeError(f"could not start a server at {url}:\n{log.read_text(errors='replace')[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop a server this module started (SIGTERM, then kill)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
