"""Bars from Yahoo Finance through yfinance: request planning, the download, and error mapping.

Yahoo serves intraday bars only for a recent window, and 1-minute bars only a few
days per request::

    resolution        look-back   per request
    1m                30 days     7 days
    2m 5m 15m 30m     60 days     the whole window
    1h                730 days    the whole window
    1d 1wk 1mo        all         all (one request)

:func:`plan_fetch` clips a request to that window (``RangeNotAvailableError`` when
none of it is inside) and cuts it into requests; :class:`YahooSource` runs them through
yfinance (``history(auto_adjust=True)``: OHLC adjusted for splits and dividends) and
maps every failure to a :mod:`dataprovider.errors` exception. A valid symbol without
bars in the range gives an empty frame, never an error; a network failure never looks
like "no data".

Time bounds. yfinance retries are set to 0. Besides the bars request, yfinance may fetch
a cookie and a crumb (with its own 30 s timeouts) and probe the ticker's timezone. The
source caps the timeout of every HTTP request its session sends at ``timeout`` seconds
(5 s for the cookie, crumb and consent requests) and at what is left of the fetch's
``budget`` (20 s by default, below the client's 30 s timeout), so a fetch against hosts
that swallow packets ends with UPSTREAM_TIMEOUT within the budget; a refused connection
or DNS failure fails at once. The first failure ends the fetch, and the limiter's
cool-down then fails the next fetches at once. A successful 1m fetch of the full 30 days
makes 5 requests.

The module is longer than most (about 480 lines) because the request plan, the
timeout caps and the error mapping all describe one upstream and change together.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import requests

from dataprovider.enums import DataResolution
from dataprovider.errors import (
    DataProviderError,
    InvalidRequestError,
    RangeNotAvailableError,
    SymbolNotFoundError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from dataprovider.frames import empty_frame, normalize_frame
from dataprovider.instruments import validate_ticker
from dataprovider.sources.base import FetchResult
from dataprovider.sources.ratelimit import RateLimiter

__all__ = ["LOOKBACK_LIMITS", "MAX_REQUEST_SPAN", "FetchPlan", "YahooSource", "plan_fetch"]

logger = logging.getLogger(__name__)

#: How far back Yahoo serves each intraday resolution.
LOOKBACK_LIMITS: dict[DataResolution, pd.Timedelta] = {
    DataResolution.MINUTE_01: pd.Timedelta(days=30),
    DataResolution.MINUTE_02: pd.Timedelta(days=60),
    DataResolution.MINUTE_05: pd.Timedelta(days=60),
    DataResolution.MINUTE_15: pd.Timedelta(days=60),
    DataResolution.MINUTE_30: pd.Timedelta(days=60),
    DataResolution.HOUR_01: pd.Timedelta(days=730),
}

#: The longest span one request may cover, where Yahoo limits it.
MAX_REQUEST_SPAN: dict[DataResolution, pd.Timedelta] = {DataResolution.MINUTE_01: pd.Timedelta(days=7)}

# The window starts this much after the limit, so a request planned now is still inside
# the limit when Yahoo receives it (after rate-limiter waits and earlier chunks).
_LIMIT_MARGIN = pd.Timedelta(minutes=10)

# A daily bar's Yahoo timestamp lies within its date in exchange time, while the frame
# indexes it at that date's midnight: asking up to a day past ``end`` returns every bar
# indexed before ``end``.
_DAILY_END_PADDING = pd.Timedelta(days=1)

_ACTION_COLUMNS = ("Dividends", "Stock Splits")


@dataclass(frozen=True)
class FetchPlan:
    """The requests one fetch makes.

    Attributes
    ----------
    windows : tuple of (Timestamp or None, Timestamp)
        UTC ``[start, end)`` spans, one request each, oldest first; a None start
        (daily and coarser only) asks for the full history. Intraday spans end at
        ``min(end, now)``.
    available_from : Timestamp or None
        The earliest time Yahoo serves at this resolution (None: no limit).
    """

    windows: tuple[tuple[pd.Timestamp | None, pd.Timestamp], ...]
    available_from: pd.Timestamp | None


def plan_fetch(
    resolution: DataResolution,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    now: pd.Timestamp,
) -> FetchPlan:
    """Clip ``[start, end)`` to what Yahoo serves at ``resolution`` and cut it into requests.

    Parameters
    ----------
    resolution : DataResolution
        The bar width.
    start, end : Timestamp or None
        UTC bounds (naive ones are taken as UTC); None means as far back as Yahoo
        serves, and now.
    now : Timestamp
        The current time (UTC).

    Raises
    ------
    RangeNotAvailableError
        If the whole range lies before Yahoo's look-back window for ``resolution``.
    InvalidRequestError
        If ``start`` is not before ``end`` (code INVALID_TIME_RANGE).

    Examples
    --------
    >>> now = pd.Timestamp("2024-10-04 12:00", tz="UTC")
    >>> plan = plan_fetch(DataResolution.MINUTE_01, None, None, now)
    >>> len(plan.windows), str(plan.available_from)
    (5, '2024-09-04 12:10:00+00:00')
    >>> plan_fetch(DataResolution.DAY_01, None, None, now).windows[0][0] is None
    True
    """
    now = _utc(now)
    end = now if end is None else _utc(end)
    start = None if start is None else _utc(start)
    if start is not None and start >= end:
        raise InvalidRequestError(
            f"start ({start}) must be before end ({end})", code="INVALID_TIME_RANGE", field="start"
        )
    limit = LOOKBACK_LIMITS.get(resolution)
    if limit is None:
        return FetchPlan(((start, end),), None)
    available_from = now - limit + _LIMIT_MARGIN
    if end <= available_from:
        raise RangeNotAvailableError(
            f"Yahoo Finance serves {resolution} bars only for the last {limit.days} days "
            f"(now from {available_from:%Y-%m-%d %H:%M} UTC), and the requested range ends "
            f"{end:%Y-%m-%d %H:%M} UTC. Ask for a coarser resolution such as '1d' for older data.",
            details={
                "resolution": str(resolution),
                "limit_days": limit.days,
                "available_from": available_from.isoformat(),
            },
        )
    start = available_from if start is None or start < available_from else start
    # No intraday bar starts after now: asking only up to now keeps a far-off end from
    # stretching the last request past Yahoo's per-request span.
    stop = min(end, now) if start < now else end
    span = MAX_REQUEST_SPAN.get(resolution)
    edges = [start]
    while span is not None and edges[-1] + span < stop:
        edges.append(edges[-1] + span)
    return FetchPlan(tuple(zip(edges, [*edges[1:], stop], strict=True)), available_from)


class YahooSource:
    """Bars from Yahoo Finance through yfinance (the ``Source`` the service uses by default).

    Parameters
    ----------
    session : requests.Session or curl_cffi Session, optional
        The HTTP session yfinance uses; None lets yfinance use its own default. yfinance
        keeps one session per process, so a given session replaces it for everyone.
    timeout : float
        Seconds each HTTP request may stall (default 10).
    budget : float
        Seconds one :meth:`fetch` may spend on HTTP requests in all, cookie and crumb
        included (default 20).
    cache_dir : str or Path, optional
        Where yfinance keeps its timezone and cookie caches. yfinance applies this per
        process and only before its caches are first used: give every source of a process
        the same directory. None keeps yfinance's default (under the user cache dir).
    limiter : RateLimiter, optional
        Paces the requests and holds the shared back-off; default ``RateLimiter()``
        (2 requests/s, bursts of 5).
    now : callable, optional
        Returns the current UTC time as a Timestamp (for tests).
    clock : callable, optional
        Monotonic seconds for the budget (default ``time.monotonic``; for tests).

    Notes
    -----
    Creating a source sets yfinance's process-wide configuration: exceptions on
    (``yf.config.debug.hide_exceptions = False``) and no retries
    (``yf.config.network.retries = 0``). Without a session it makes yfinance's default
    one itself, so that its requests' timeouts can be capped too.

    Examples
    --------
    These ask Yahoo Finance over the network:

    >>> source = YahooSource()                                                    # doctest: +SKIP
    >>> result = source.fetch("SPY", DataResolution.DAY_01, pd.Timestamp("2024-01-01", tz="UTC"),
    ...                       pd.Timestamp("2024-02-01", tz="UTC"))                  # doctest: +SKIP
    >>> result.timezone, result.frame.index[0].isoformat(), result.frame.columns.tolist()  # doctest: +SKIP
    ('America/New_York', '2024-01-02T00:00:00-05:00', ['Open', 'High', 'Low', 'Close', 'Volume'])
    """

    name = "yahoo"

    def __init__(
        self,
        session: Any = None,
        *,
        timeout: float = 10.0,
        budget: float = 20.0,
        cache_dir: str | os.PathLike[str] | None = None,
        limiter: RateLimiter | None = None,
        now: Callable[[], pd.Timestamp] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._yf = _import_yfinance()
        self._yf.config.debug.hide_exceptions = False
        self._yf.config.network.retries = 0
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
            self._yf.set_tz_cache_location(os.fspath(cache_dir))
        self.session = session if session is not None else self._yf.data.new_session()
        self.timeout = float(timeout)
        self.budget = float(budget)
        self._clock = clock
        _cap_timeouts(self.session, self.timeout, clock)
        self.limiter = limiter if limiter is not None else RateLimiter()
        self._now = now or (lambda: pd.Timestamp.now(tz="UTC"))

    def fetch(
        self,
        ticker: str,
        resolution: DataResolution,
        start: pd.Timestamp | None,
        end: pd.Timestamp | None,
    ) -> FetchResult:
        """Download the bars of ``ticker`` with ``start <= time < end``.

        Parameters
        ----------
        ticker : str
            A Yahoo symbol ('SPY', 'BTC-USD', 'EURUSD=X', ...).
        resolution : DataResolution or str
            The bar width.
        start, end : Timestamp or None
            UTC bounds; None means as far back as Yahoo serves, and now.

        Returns
        -------
        FetchResult
            The canonical frame (empty when Yahoo has no bars in the range), the exchange
            timezone, the splits and dividends in the range, and for intraday resolutions
            the start of Yahoo's look-back window.

        Raises
        ------
        SymbolNotFoundError, RangeNotAvailableError, UpstreamUnavailableError,
        UpstreamRateLimitedError, UpstreamTimeoutError
            See the module docstring.
        """
        ticker = validate_ticker(ticker)
        resolution = DataResolution.parse(resolution)
        plan = plan_fetch(resolution, start, end, self._now())
        handle = self._yf.Ticker(ticker, session=self.session)
        frames, actions, timezone = [], [], None
        _deadline.value = self._clock() + self.budget
        try:
            for window in plan.windows:
                frame, timezone = self._download(handle, ticker, resolution, window)
                if frame is not None:
                    frame = _restrict(frame, *window)
                    frames.append(frame)
                    actions.append(frame.loc[(frame[list(_ACTION_COLUMNS)] != 0).any(axis=1), list(_ACTION_COLUMNS)])
        finally:
            _deadline.value = None
        bars = normalize_frame(pd.concat(frames), resolution, timezone) if frames else empty_frame(resolution, timezone)
        logger.debug("yahoo %s %s: %d bars in %d request(s)", ticker, resolution, len(bars), len(plan.windows))
        return FetchResult(
            frame=bars,
            timezone=timezone,
            corporate_actions=_corporate_actions(actions, resolution, timezone),
            available_from=plan.available_from,
        )

    def _download(
        self, handle: Any, ticker: str, resolution: DataResolution, window: tuple[pd.Timestamp | None, pd.Timestamp]
    ) -> tuple[pd.DataFrame | None, str]:
        """One ``history()`` call: the raw yfinance frame (None: no bars) and the exchange timezone."""
        start, end = window
        if resolution.is_intraday:
            span = {"start": start, "end": end}
        else:
            span = {"end": end + _DAILY_END_PADDING, **({"start": start} if start is not None else {"period": "max"})}
        self.limiter.acquire(ticker)
        # yfinance memoises answers for past ranges for the life of the process; a later
        # split or dividend changes those answers, so every fetch asks Yahoo afresh.
        self._yf.data.YfData.cache_get.cache_clear()
        try:
            frame = handle.history(
                interval=str(resolution),
                auto_adjust=True,
                actions=True,
                prepost=False,
                repair=False,
                timeout=self.timeout,
                **span,
            )
        except self._yf.exceptions.YFPricesMissingError as exc:
            if exc.yahoo_reason is not None:
                raise self._refusal(exc.yahoo_reason, ticker, resolution) from exc
            frame = None  # Yahoo answered without bars; its metadata says whether it knows the symbol
        except Exception as exc:
            error = self._translate(exc, ticker)
            if error is None:
                raise
            raise error from exc
        self.limiter.report_success()
        timezone = handle.history_metadata.get("exchangeTimezoneName")
        if timezone is None:
            raise UpstreamUnavailableError(
                f"Yahoo Finance answered the request for {ticker} {resolution} without its metadata; "
                "retry later, or ask with local_only=True (the default) to read only the cache.",
                ticker=ticker,
            )
        return frame, timezone

    def _refusal(self, reason: str, ticker: str, resolution: DataResolution) -> DataProviderError:
        """The error for a chart request Yahoo refused with an explanation."""
        if "No data found" in reason or "delisted" in reason:
            return _symbol_not_found(ticker)
        if "within the last" in reason:
            return RangeNotAvailableError(
                f"Yahoo Finance refused {resolution} bars for {ticker}: {reason}. "
                "Ask for a more recent range or a coarser resolution.",
                ticker=ticker,
                details={"resolution": str(resolution)},
            )
        return UpstreamUnavailableError(
            f"Yahoo Finance refused the request for {ticker} {resolution}: {reason}.", ticker=ticker
        )

    def _translate(self, exc: Exception, ticker: str) -> DataProviderError | None:
        """The error for a failed download (None: not an upstream failure, a bug to re-raise)."""
        yf_errors = self._yf.exceptions
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, yf_errors.YFRateLimitError) or status == 429:
            retry_after = self.limiter.report_rate_limited()
            return UpstreamRateLimitedError(
                f"Yahoo Finance answered HTTP 429 Too Many Requests for {ticker}; no requests are "
                f"sent for {retry_after:.0f} s. Retry later, or ask with local_only=True (the default) to read only "
                "the cache.",
                ticker=ticker,
                details={"retry_after": retry_after},
            )
        # An unknown symbol fails yfinance's timezone probe (YFTzMissingError), or its
        # fallback lookup answers HTTP 404.
        if isinstance(exc, yf_errors.YFTzMissingError) or status == 404:
            return _symbol_not_found(ticker)
        if isinstance(exc, _timeout_types()):
            retry_after = self.limiter.report_unavailable(f"a request timed out after {self.timeout:g} s")
            return UpstreamTimeoutError(
                f"Yahoo Finance did not answer within {self.timeout:g} s for {ticker}. Retry later, "
                "raise the source timeout, or ask with local_only=True (the default) to read only the cache.",
                ticker=ticker,
                details={"timeout": self.timeout, "retry_after": retry_after},
            )
        if isinstance(exc, (OSError, yf_errors.YFDataException)):
            if isinstance(exc, (yf_errors.YFDataException, ValueError)):
                # yfinance's "Yahoo is down" check, or an answer that is not JSON (an outage page)
                cause = "it answered with an outage page instead of price data"
            else:
                cause = _short(exc)
            retry_after = self.limiter.report_unavailable(cause)
            return UpstreamUnavailableError(
                f"Could not get {ticker} from Yahoo Finance ({cause}). Check the network connection "
                "or retry later, or ask with local_only=True (the default) to read only the cache.",
                ticker=ticker,
                details={"retry_after": retry_after},
            )
        return None


#: The path of Yahoo's bars (chart) requests; every other request (cookie, crumb, consent)
#: only helps and gets at most ``_AUXILIARY_TIMEOUT`` seconds, so the bars request keeps its own.
_CHART_PATH = "/finance/chart/"
_AUXILIARY_TIMEOUT = 5.0

#: The monotonic time by which the fetch running on this thread must end (None: no fetch).
_deadline = threading.local()


def _cap_timeouts(session: Any, limit: float, clock: Callable[[], float]) -> None:
    """Make every request ``session`` sends wait at most ``limit`` s, and never past the fetch's deadline.

    yfinance passes its own timeouts (30 s for the cookie and crumb); wrapping the
    session's ``request`` caps them all, whichever HTTP backend the session is. Requests
    other than for bars get at most ``_AUXILIARY_TIMEOUT`` seconds.
    """
    send = getattr(session.request, "uncapped", session.request)

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        deadline = getattr(_deadline, "value", None)
        allowed = limit if _CHART_PATH in url else min(limit, _AUXILIARY_TIMEOUT)
        if deadline is not None:
            allowed = min(allowed, deadline - clock())
        if allowed <= 0:
            raise requests.exceptions.Timeout("the fetch used up its time budget before this request")
        asked = kwargs.get("timeout")
        kwargs["timeout"] = allowed if asked is None else min(asked, allowed)
        return send(method, url, *args, **kwargs)

    request.uncapped = send  # type: ignore[attr-defined]
    session.request = request


def _import_yfinance() -> Any:
    try:
        import yfinance
        import yfinance.data  # noqa: F401  (YfData, whose response memo fetch() clears)
        import yfinance.exceptions  # noqa: F401
    except ImportError as exc:  # pragma: no cover - yfinance is a declared dependency
        raise ImportError("YahooSource needs yfinance: pip install 'dataprovider[server]'") from exc
    return yfinance


def _timeout_types() -> tuple[type[BaseException], ...]:
    """The timeout exceptions of the HTTP backends yfinance may use."""
    types: list[type[BaseException]] = [TimeoutError, requests.exceptions.Timeout]
    try:
        from curl_cffi.requests.exceptions import Timeout as CurlTimeout
    except ImportError:
        pass
    else:
        types.append(CurlTimeout)
    return tuple(types)


def _symbol_not_found(ticker: str) -> SymbolNotFoundError:
    return SymbolNotFoundError(
        f"Yahoo Finance does not know the symbol {ticker!r} (it may be misspelled or delisted); "
        "check it on finance.yahoo.com.",
        ticker=ticker,
    )


def _short(exc: BaseException) -> str:
    """A one-line description of a network error, at most 200 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _utc(value: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _restrict(frame: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp) -> pd.DataFrame:
    """The rows with ``start <= index < end``; drops Yahoo's trailing bar past the period."""
    keep = frame.index < end
    if start is not None:
        keep &= frame.index >= start
    return frame[keep]


def _corporate_actions(parts: list[pd.DataFrame], resolution: DataResolution, timezone: str) -> pd.DataFrame:
    """The non-zero Dividends / Stock Splits rows, float64, indexed like the canonical frame."""
    index = empty_frame(resolution, timezone).index
    if not parts or not any(len(p) for p in parts):
        return pd.DataFrame({col: pd.Series(dtype="float64") for col in _ACTION_COLUMNS}, index=index)
    actions = pd.concat(parts).astype("float64")
    actions.index = pd.DatetimeIndex(actions.index).tz_convert(timezone).as_unit("ns").rename(index.name)
    actions = actions[~actions.index.duplicated(keep="last")]
    return actions.sort_index(kind="stable")
