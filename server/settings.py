"""Server settings: one frozen dataclass, with command-line values and environment overrides read in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Settings", "default_data_dir"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001


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
        Never contact Yahoo Finance; serve the cache alone.
    load_samples : bool
        Load the bundled sample data into the cache where a dataset is missing.
    workers : int
        Threads answering requests that may wait (downloads, batches).
    memory_cache_mb : int
        Memory budget for datasets kept in memory (0: read the files every time).
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
