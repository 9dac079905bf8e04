"""dataprovider: a local cache of OHLC price bars with a Jupyter-friendly client."""

from __future__ import annotations

import logging

from ._version import __version__
from .enums import DataPeriod, DataResolution

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = sorted(["DataPeriod", "DataResolution", "__version__"])
