"""Server settings: one frozen dataclass, with command-line values and environment overrides read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from dataprovider.engine.refresh import RefreshPolicy
from dataprovider.protocol.events import DEFAULT_HOST, DEFAULT_PORT
from server.auth import is_loopback
from server.socket.limits import Limits
from server.source_loading import DEFAULT_SOURCE

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Settings", "default_data_dir"]


def default_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit`` if given, else ``$DATAPROVIDER_HOME``, else a per-user data directory.

    Examples
    --------
    >>> default_data_dir("/tmp/bars")
    PosixPath('/tmp/bars')
    """
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("DATAPROVIDER_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("dataprovider", appauthor=False))


@dataclass(frozen=True)
class Settings:
    """Everything the server process needs to know.

    Attributes
    ----------
    host, port : str, int
        Where to listen (loopback by default).
    data_dir : Path
        The cache directory.
    log_file : Path or None
        Rotating log file (None: console only).
    log_level : str
        Logging level name.
    offline : bool
        Never contact the source; serve the cache alone.
    load_samples : bool
        Load the bundled sample data into the cache where a dataset is missing.
    workers : int
        Threads answering requests that may wait (downloads, batches).
    memory_cache_mb : int
        Memory budget for datasets kept in memory (0: read the files every time).
    token : str or None
        The shared secret clients must present (None: no check; only allowed on
        loopback unless ``insecure_no_auth``).
    insecure_no_auth : bool
        Serve a non-loopback address without a token (the caller was warned).
    allowed_origins : tuple of str
        Browser origins allowed besides the server's own (never '*').
    limits : Limits
        What one client may ask: requests in flight, events per second,
        requests waiting for a worker, unread replies (:class:`server.socket.limits.Limits`).
    replay : float or None
        Live subscriptions replay the cached history at this many bars a second
        (and the source is never contacted); None: they poll the source.
    refresh : RefreshPolicy
        How soon a dataset may be asked of the source again (intraday and daily
        minimum intervals, :class:`~dataprovider.engine.refresh.RefreshPolicy`).
    source : str
        Where missing bars come from: 'yahoo', the name of an installed source or
        MODULE:FACTORY (see :mod:`server.source_loading`); not loaded when
        ``offline`` or ``replay`` is set.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = Path("data")
    log_file: Path | None = Path("data_server.log")
    log_level: str = "INFO"
    offline: bool = False
    load_samples: bool = True
    workers: int = 8
    memory_cache_mb: int = 512
    token: str | None = None
    insecure_no_auth: bool = False
    allowed_origins: tuple[str, ...] = ()
    limits: Limits = Limits()
    replay: float | None = None
    refresh: RefreshPolicy = RefreshPolicy()
    source: str = DEFAULT_SOURCE

    def check_exposure(self) -> None:
        """Refuse a non-loopback address without a token (unless explicitly insecure).

        Raises
        ------
        ValueError
            With what to do instead.
        """
        if not is_loopback(self.host) and self.token is None and not self.insecure_no_auth:
            raise ValueError(
                f"refusing to serve {self.host} without a token: anyone who can reach it could use it. "
                "Set one with --token or $DATAPROVIDER_TOKEN (clients pass it as DataProviderLocal(token=...)), "
                "or pass --insecure-no-auth if you really want an open server"
            )
