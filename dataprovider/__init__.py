"""dataprovider: a local cache of OHLC price bars with a Jupyter-friendly client."""

from __future__ import annotations

import logging

from ._version import __version__
from .client import DataProviderLocal
from .enums import DataPeriod, DataResolution
from .errors import (
    AuthenticationError,
    CacheCorruptError,
    ConnectionFailedError,
    DataNotFoundError,
    DataProviderError,
    InternalServerError,
    InvalidRequestError,
    NoDataError,
    NotCachedError,
    RangeNotAvailableError,
    RequestTimeoutError,
    ServerBusyError,
    StorageFullError,
    SymbolNotFoundError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from .subscriptions import LiveBar, Subscription

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AuthenticationError",
    "CacheCorruptError",
    "ConnectionFailedError",
    "DataNotFoundError",
    "DataPeriod",
    "DataProviderError",
    "DataProviderLocal",
    "DataResolution",
    "InternalServerError",
    "InvalidRequestError",
    "LiveBar",
    "NoDataError",
    "NotCachedError",
    "RangeNotAvailableError",
    "RequestTimeoutError",
    "ServerBusyError",
    "StorageFullError",
    "Subscription",
    "SymbolNotFoundError",
    "UpstreamError",
    "UpstreamRateLimitedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "__version__",
]
