"""Logging for the server process: console plus a rotating log file (the library only logs)."""

from __future__ import annotations

import logging
import logging.handlers
import warnings
from pathlib import Path

import pandas as pd

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO", log_file: Path | None = None) -> None:
    """Send records at ``level`` and above to stderr and, if given, to a rotating ``log_file`` (10 MB x 3)."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        Path(log_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(log_file, maxBytes=10 * 1024 * 1024, backupCount=3, encoding="utf-8")
        )
    logging.basicConfig(level=level.upper(), format=_FORMAT, handlers=handlers, force=True)
    # One line per HTTP request and engine.io packet drowns everything else.
    for noisy in ("werkzeug", "engineio.server", "socketio.server"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    # yfinance 1.7 calls pandas APIs that pandas 3 deprecates, on every download.
    warnings.filterwarnings("ignore", category=pd.errors.Pandas4Warning, module=r"yfinance(\.|$)")
    logging.captureWarnings(True)
