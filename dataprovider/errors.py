"""The exception tree, and the mapping between exceptions and wire error payloads.

Every error that crosses the wire carries a stable ``code``; the client turns it
back into the matching exception class. Each class also inherits a fitting
builtin, so ``except KeyError`` or ``except TimeoutError`` work as expected::

    DataProviderError(Exception)                       .code .message .field .details .ticker
    ├── InvalidRequestError(ValueError)                INVALID_*, BATCH_TOO_LARGE, REQUEST_TOO_LARGE, UNKNOWN_*
    ├── DataNotFoundError(LookupError)
    │   ├── NotCachedError                             NOT_CACHED
    │   ├── NoDataError                                NO_DATA
    │   ├── RangeNotAvailableError                     RANGE_NOT_AVAILABLE
    │   └── SymbolNotFoundError(KeyError)              SYMBOL_NOT_FOUND
    ├── UpstreamError(ConnectionError)
    │   ├── UpstreamUnavailableError                   UPSTREAM_UNAVAILABLE
    │   ├── UpstreamRateLimitedError                   UPSTREAM_RATE_LIMITED
    │   └── UpstreamTimeoutError(TimeoutError)         UPSTREAM_TIMEOUT
    ├── CacheError(OSError)
    │   ├── CacheCorruptError                          CACHE_CORRUPT
    │   └── StorageFullError                           STORAGE_FULL
    ├── AuthenticationError(PermissionError)           UNAUTHORIZED
    ├── ServerBusyError                                BUSY
    ├── RequestCancelledError                          CANCELLED
    ├── InternalServerError                            INTERNAL
    ├── ConnectionFailedError(ConnectionError)         CONNECTION_FAILED (client side)
    └── RequestTimeoutError(TimeoutError)              REQUEST_TIMEOUT (client side)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "CacheCorruptError",
    "CacheError",
    "ConnectionFailedError",
    "DataNotFoundError",
    "DataProviderError",
    "InternalServerError",
    "InvalidRequestError",
    "NoDataError",
    "NotCachedError",
    "RangeNotAvailableError",
    "RequestCancelledError",
    "RequestTimeoutError",
    "ServerBusyError",
    "StorageFullError",
    "SymbolNotFoundError",
    "UpstreamError",
    "UpstreamRateLimitedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "code_for_http_status",
    "describe_value",
    "error_from_payload",
]


class DataProviderError(Exception):
    """Base of every error the library raises.

    Parameters
    ----------
    message : str
        What went wrong and what to do about it.
    code : str, optional
        Stable machine-readable code; defaults to the class's ``default_code``.
    field : str, optional
        The request field at fault, for validation errors.
    ticker : str, optional
        The ticker the error concerns.
    details : dict, optional
        Extra structured information (allowed values, limits, ...).
    """

    default_code: ClassVar[str] = "INTERNAL"
    http_status: ClassVar[int] = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        ticker: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field
        self.ticker = ticker
        self.details = dict(details or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def to_payload(self) -> dict[str, Any]:
        """The error as a JSON-safe dict, the form it takes on the wire."""
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "ticker": self.ticker,
            "details": self.details,
        }


class InvalidRequestError(DataProviderError, ValueError):
    """The request is malformed; ``field`` names the part to fix."""

    default_code = "INVALID_PAYLOAD"
    http_status = 400


class DataNotFoundError(DataProviderError, LookupError):
    """There are no bars to answer the request with."""

    default_code = "NO_DATA"
    http_status = 404


class NotCachedError(DataNotFoundError):
    """The data is not in the cache and the request read the cache alone (local_only, the default)."""

    default_code = "NOT_CACHED"


class NoDataError(DataNotFoundError):
    """The source and the cache have no bars in the requested window."""

    default_code = "NO_DATA"


class RangeNotAvailableError(DataNotFoundError):
    """The source does not offer this resolution that far back."""

    default_code = "RANGE_NOT_AVAILABLE"


class SymbolNotFoundError(DataNotFoundError, KeyError):
    """The upstream source does not know the ticker."""

    default_code = "SYMBOL_NOT_FOUND"

    def __str__(self) -> str:  # KeyError would otherwise print the repr
        return DataProviderError.__str__(self)


class UpstreamError(DataProviderError, ConnectionError):
    """The upstream source (Yahoo Finance) failed."""

    default_code = "UPSTREAM_UNAVAILABLE"
    http_status = 502


class UpstreamUnavailableError(UpstreamError):
    """The upstream source could not be reached."""

    default_code = "UPSTREAM_UNAVAILABLE"


class UpstreamRateLimitedError(UpstreamError):
    """The upstream source answered 429 Too Many Requests."""

    default_code = "UPSTREAM_RATE_LIMITED"
    http_status = 503


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    """The upstream source did not answer in time."""

    default_code = "UPSTREAM_TIMEOUT"
    http_status = 504


class CacheError(DataProviderError, OSError):
    """The local cache could not be read or written."""

    default_code = "CACHE_CORRUPT"
    http_status = 500


class CacheCorruptError(CacheError):
    """A cache file was torn or corrupt; it has been set aside."""

    default_code = "CACHE_CORRUPT"


class StorageFullError(CacheError):
    """The disk is full or failing; the previous data is kept."""

    default_code = "STORAGE_FULL"
    http_status = 507


class AuthenticationError(DataProviderError, PermissionError):
    """The server requires a token and none, or a wrong one, was sent."""

    default_code = "UNAUTHORIZED"
    http_status = 401


class ServerBusyError(DataProviderError):
    """The server is at its limit of requests; retry shortly."""

    default_code = "BUSY"
    http_status = 503


class RequestCancelledError(DataProviderError):
    """The client cancelled the request (Ctrl-C, a cancelled task); its remaining work was dropped."""

    default_code = "CANCELLED"
    http_status = 499


class InternalServerError(DataProviderError):
    """An unexpected server-side failure; the server log has the traceback."""

    default_code = "INTERNAL"
    http_status = 500


class ConnectionFailedError(DataProviderError, ConnectionError):
    """The client could not connect to the server."""

    default_code = "CONNECTION_FAILED"


class RequestTimeoutError(DataProviderError, TimeoutError):
    """The client gave up waiting for the server's reply."""

    default_code = "REQUEST_TIMEOUT"


_VALIDATION_CODES = (
    "INVALID_PAYLOAD",
    "INVALID_TICKER",
    "INVALID_RESOLUTION",
    "INVALID_PERIOD",
    "INVALID_TIME_RANGE",
    "INVALID_LIMIT",
    "INVALID_FORMAT",
    "INVALID_FILE",
    "BATCH_TOO_LARGE",
    "REQUEST_TOO_LARGE",
    "UNKNOWN_EVENT",
    "UNKNOWN_ENDPOINT",
    "METHOD_NOT_ALLOWED",
)

#: Every error code, mapped to the exception class that carries it.
ERROR_CLASSES: dict[str, type[DataProviderError]] = {
    **{code: InvalidRequestError for code in _VALIDATION_CODES},
    **{
        cls.default_code: cls
        for cls in (
            NotCachedError,
            NoDataError,
            RangeNotAvailableError,
            SymbolNotFoundError,
            UpstreamUnavailableError,
            UpstreamRateLimitedError,
            UpstreamTimeoutError,
            CacheCorruptError,
            StorageFullError,
            AuthenticationError,
            ServerBusyError,
            RequestCancelledError,
            InternalServerError,
            ConnectionFailedError,
            RequestTimeoutError,
        )
    },
}


_HTTP_STATUS_OVERRIDES = {"UNKNOWN_ENDPOINT": 404, "METHOD_NOT_ALLOWED": 405, "REQUEST_TOO_LARGE": 413}
# HTTP errors raised by the web server itself (not by a handler), and the code each is answered with.
_HTTP_ERROR_CODES = {
    404: "UNKNOWN_ENDPOINT",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    414: "REQUEST_TOO_LARGE",
    431: "REQUEST_TOO_LARGE",
    505: "INVALID_PAYLOAD",  # HTTP Version Not Supported: the request's fault
}


def http_status_for(code: str) -> int:
    """The HTTP status that fits an error code (404 for NOT_CACHED, ...)."""
    return _HTTP_STATUS_OVERRIDES.get(code) or ERROR_CLASSES.get(code, InternalServerError).http_status


def code_for_http_status(status: int) -> str:
    """The error code for an HTTP error the web layer raises itself (other 4xx: INVALID_PAYLOAD; 5xx: INTERNAL).

    Examples
    --------
    >>> code_for_http_status(414), code_for_http_status(400), code_for_http_status(500)
    ('REQUEST_TOO_LARGE', 'INVALID_PAYLOAD', 'INTERNAL')
    """
    return _HTTP_ERROR_CODES.get(status) or ("INTERNAL" if status >= 500 else "INVALID_PAYLOAD")


#: Longest rendering of a request value quoted in an error message.
_SHOWN_CHARS = 40
_KIND_NAMES = {list: "a list", dict: "an object", bytes: "binary data"}


def describe_value(value: object) -> str:
    """A short, safe rendering of a request value for an error message, in JSON terms.

    Strings are quoted and cut to 40 characters; numbers, booleans and null are
    shown as JSON writes them; containers and binary data by their kind only, so
    a message never grows with what was sent.

    Examples
    --------
    >>> describe_value("x" * 50), describe_value(None), describe_value([1, 2]), describe_value(1e100)
    ("'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (50 characters)", 'null', 'a list', '1e+100')
    """
    if isinstance(value, str):
        shown = repr(value[:_SHOWN_CHARS])
        return shown if len(value) <= _SHOWN_CHARS else f"{shown}... ({len(value)} characters)"
    if isinstance(value, bool) or value is None:
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**_SHOWN_CHARS else f"a number of over {_SHOWN_CHARS} digits"
    if isinstance(value, float):
        return repr(value)
    return _KIND_NAMES.get(type(value), f"a {type(value).__name__}")


def error_from_payload(payload: dict[str, Any]) -> DataProviderError:
    """Rebuild the exception for a wire error payload (an unknown code gives a plain DataProviderError).

    Examples
    --------
    >>> err = error_from_payload({"code": "NOT_CACHED", "message": "SPY 1m is not cached"})
    >>> isinstance(err, NotCachedError), err.code
    (True, 'NOT_CACHED')
    """
    code = str(payload.get("code") or "INTERNAL")
    cls = ERROR_CLASSES.get(code, DataProviderError)
    return cls(
        str(payload.get("message") or code),
        code=code,
        field=payload.get("field"),
        ticker=payload.get("ticker"),
        details=payload.get("details") or {},
    )
