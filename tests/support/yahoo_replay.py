"""An offline Yahoo Finance for tests: real yfinance code, answered from recorded chart responses.

``YahooReplay`` builds a plain ``requests.Session`` whose ``https://`` and ``http://``
adapter is a ``requests_mock.Adapter`` (matchers registered later win). It answers

* the v8 chart endpoint ``https://query{1,2}.finance.yahoo.com/v8/finance/chart/{SYMBOL}``
  from the recording registered for that symbol and interval: a ``period1``/``period2``
  request gets the bars with ``period1 <= t < period2`` and the events in that period,
  followed by any bars the recording holds past its own recorded period (the latest
  price Yahoo appended, as in the AAPL 1m recording) that fall after ``period2``; a
  ``range=`` request (yfinance's timezone probe asks ``range=1d``) gets the last bar,
  whatever the interval;
* yfinance's cookie, crumb and consent calls with dummy answers;
* anything else with a :class:`ReplayError`, as does a chart request for an interval
  that was not registered, so a test cannot silently get the wrong data.

Scenario switches (attributes, all off by default): ``unreachable`` (every request
raises ``requests.ConnectionError``), ``rate_limited`` (chart requests answer HTTP 429),
``latency`` (seconds; a request whose timeout is shorter raises ``ReadTimeout`` at once,
as requests would after waiting, and none waits for real), ``empty`` (period requests get
Yahoo's answer for a range without bars); ``add_unknown(symbol)`` makes a symbol answer
as an unknown one does. ``as_of(when)`` answers as Yahoo would have at an earlier time.

yfinance keeps one process-wide session: ``yf.Ticker(symbol, session=replay.session)``
or ``YahooSource(session=replay.session)`` installs this one. yfinance also memoises
responses for past ranges in-process (``YfData.cache_get``); ``YahooSource`` clears that
memo on every fetch, code calling yfinance directly must clear it itself.

Examples
--------
>>> replay = YahooReplay("nyf2_historical-via-chart-NVDA-split-2021-02-01-to-2022-01-31.csv.json")
>>> source = YahooSource(replay.session, cache_dir=tmp_dir)          # doctest: +SKIP
>>> result = source.fetch("NVDA", DataResolution.DAY_01, start, end)  # doctest: +SKIP
>>> replay.fetch_count("NVDA")                                        # doctest: +SKIP
1
"""

from __future__ import annotations

import bisect
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd
import requests
import requests_mock

__all__ = [
    "CHART_URL",
    "DATA_DIR",
    "ChartRecording",
    "ChartRequest",
    "ReplayError",
    "YahooReplay",
    "load_recording",
]

#: The recorded chart responses (see the README.md there for provenance and licences).
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "yahoo-chart"

#: The chart endpoint, for registering overrides on ``YahooReplay.adapter``.
CHART_URL = re.compile(r"https://query[12]\.finance\.yahoo\.com/v8/finance/chart/(?P<symbol>[^?/]+)")
_QUOTE_SUMMARY_URL = re.compile(r"https://query[12]\.finance\.yahoo\.com/v10/finance/quoteSummary/(?P<symbol>[^?/]+)")
_CRUMB_URL = re.compile(r"https://query[12]\.finance\.yahoo\.com/v1/test/getcrumb")
# fc.yahoo.com hands out the cookie; guce/consent.yahoo.com serve the consent flow that
# yfinance falls back to when the cookie or crumb is missing or a request fails.
_COOKIE_URL = re.compile(r"https://(fc|guce|consent)\.yahoo\.com/")

_PRICE_KEYS = ("open", "high", "low", "close")
_JSON = {"Content-Type": "application/json;charset=utf-8"}


class ReplayError(AssertionError):
    """A request the replay has no answer for (a test set-up mistake, never Yahoo behaviour)."""


@dataclass(frozen=True)
class ChartRecording:
    """One recorded chart response.

    Attributes
    ----------
    name : str
        The file name.
    body : dict
        The response body as Yahoo sent it (``{"chart": {"result": [...], "error": None}}``).
    period : tuple of int, or None
        ``(period1, period2)`` of the recorded request, when the recording kept its URL
        (node-yahoo-finance2 files); bars at or after ``period2`` are Yahoo's trailing bars.
    """

    name: str
    body: dict[str, Any]
    period: tuple[int, int] | None

    @property
    def result(self) -> dict[str, Any]:
        """The single chart result (meta, timestamp, indicators, events)."""
        return self.body["chart"]["result"][0]

    @property
    def symbol(self) -> str:
        """The Yahoo symbol, from the response's metadata."""
        return self.result["meta"]["symbol"]

    @property
    def interval(self) -> str:
        """The bar interval Yahoo answered with ('1d', '1m', ...)."""
        return self.result["meta"]["dataGranularity"]

    @property
    def timezone(self) -> str:
        """The exchange timezone from the response's metadata."""
        return self.result["meta"]["exchangeTimezoneName"]

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        """The bar timestamps (UTC), empty for a recording without bars."""
        return pd.to_datetime(self.result.get("timestamp", []), unit="s", utc=True)


@dataclass(frozen=True)
class ChartRequest:
    """A chart request the replay received (whatever it answered)."""

    symbol: str
    params: dict[str, str]
    timeout: float | None

    @property
    def is_fetch(self) -> bool:
        """True for a bars request (``period1``/``period2``), False for a ``range=`` probe."""
        return "period1" in self.params


def load_recording(name: str | Path) -> ChartRecording:
    """Load a recorded chart response, from :data:`DATA_DIR` unless ``name`` is a path.

    Reads both kinds: ``yfrs_*`` files are the raw body; ``nyf2_*`` files wrap it as
    ``{"request": {"url"}, "response": {"bodyJson" | "body"}}``.

    Examples
    --------
    >>> rec = load_recording("nyf2_chart-BTC-USD-2020-01-01-to-2020-01-03.json")
    >>> rec.symbol, rec.interval, rec.timezone, len(rec.timestamps)
    ('BTC-USD', '1d', 'UTC', 3)
    """
    path = Path(name)
    if not path.is_absolute() and not path.exists():
        path = DATA_DIR / path
    raw = json.loads(path.read_text(encoding="utf-8"))
    if "response" not in raw:
        return ChartRecording(path.name, raw, None)
    response = raw["response"]
    body = response["bodyJson"] if "bodyJson" in response else json.loads(response["body"])
    query = parse_qs(urlsplit(raw["request"]["url"]).query)
    period = (int(query["period1"][0]), int(query["period2"][0])) if "period1" in query else None
    return ChartRecording(path.name, body, period)


class YahooReplay:
    """A ``requests.Session`` that answers yfinance offline from recorded chart responses.

    Parameters
    ----------
    *recordings : str or Path
        Recordings to register at once (see :meth:`add`).

    Attributes
    ----------
    session : requests.Session
        Pass it to ``YahooSource(session=...)`` or ``yf.Ticker(..., session=...)``.
    adapter : requests_mock.Adapter
        Mounted on ``https://`` and ``http://``; register extra matchers on it to override.
    requests : list of ChartRequest
        Every chart request received, in order.
    unreachable, rate_limited, empty : bool
        Scenario switches (see the module docstring).
    latency : float
        Simulated response time in seconds (0: instant).
    """

    def __init__(self, *recordings: str | Path) -> None:
        self.unreachable = False
        self.rate_limited = False
        self.empty = False
        self.latency = 0.0
        self.requests: list[ChartRequest] = []
        self._recordings: dict[tuple[str, str], ChartRecording] = {}
        self._unknown: set[str] = set()
        self._as_of: int | None = None

        self.adapter = requests_mock.Adapter(case_sensitive=True)
        self.adapter.register_uri(requests_mock.ANY, requests_mock.ANY, text=self._unexpected)
        self.adapter.register_uri(requests_mock.ANY, _COOKIE_URL, text=self._cookie)
        self.adapter.register_uri("GET", _CRUMB_URL, text=self._crumb)
        self.adapter.register_uri("GET", _QUOTE_SUMMARY_URL, text=self._quote_summary)
        self.adapter.register_uri("GET", CHART_URL, text=self._chart)
        self.session = requests.Session()
        self.session.mount("https://", self.adapter)
        self.session.mount("http://", self.adapter)
        for recording in recordings:
            self.add(recording)

    # -- set-up -----------------------------------------------------------------------

    def add(self, recording: str | Path | ChartRecording, *, interval: str | None = None) -> ChartRecording:
        """Register a recording for its symbol and interval (replacing an earlier one).

        Parameters
        ----------
        recording : str, Path or ChartRecording
            A file name in :data:`DATA_DIR`, a path, or a loaded recording.
        interval : str, optional
            Serve it for requests of this interval instead of the recorded one. yfinance
            asks Yahoo for 15m bars when it is asked for 30m ones and resamples them, so a
            30m recording answers a 30m fetch only when registered as ``interval="15m"``.
        """
        if not isinstance(recording, ChartRecording):
            recording = load_recording(recording)
        self._recordings[(recording.symbol, interval or recording.interval)] = recording
        return recording

    def add_unknown(self, symbol: str) -> None:
        """Make ``symbol`` answer as Yahoo answers a symbol it does not know (HTTP 404)."""
        self._unknown.add(symbol)

    def as_of(self, when: pd.Timestamp | str | None) -> None:
        """Answer as Yahoo would have at ``when`` (None: as recorded).

        Bars starting at or after ``when`` and events on or after it are removed. For
        each removed split of ratio r, the earlier prices (and adjclose) are multiplied
        by r, volumes divided by r and earlier dividend amounts multiplied by r; adjclose
        is rescaled so the dividends after ``when`` no longer apply. Only events inside
        the recording can be undone: prices stay adjusted for anything Yahoo applied
        after the recorded range.
        """
        self._as_of = None if when is None else int(_utc(when).timestamp())

    # -- inspection -------------------------------------------------------------------

    def fetch_count(self, symbol: str) -> int:
        """How many bars requests (not timezone probes) reached the replay for ``symbol``.

        yfinance sends a request again, once, when Yahoo answers it with HTTP 400 or more,
        so a fetch that fails that way counts twice.
        """
        return sum(1 for r in self.requests if r.symbol == symbol and r.is_fetch)

    def requests_for(self, symbol: str) -> list[ChartRequest]:
        """The chart requests received for ``symbol``, in order."""
        return [r for r in self.requests if r.symbol == symbol]

    # -- answers ----------------------------------------------------------------------

    def _simulate_network(self, request) -> None:
        if self.unreachable:
            raise requests.exceptions.ConnectionError(
                f"HTTPSConnectionPool(host={request.hostname!r}, port=443): Max retries exceeded "
                "(replay: [Errno 101] Network is unreachable)"
            )
        timeout = request.timeout[1] if isinstance(request.timeout, tuple) else request.timeout
        if self.latency and timeout is not None and timeout < self.latency:
            raise requests.exceptions.ReadTimeout(
                f"HTTPSConnectionPool(host={request.hostname!r}, port=443): "
                f"Read timed out. (read timeout={timeout}) (replay: latency {self.latency} s)"
            )

    def _unexpected(self, request, context) -> str:
        raise ReplayError(f"the Yahoo replay has no answer for {request.method} {request.url}")

    def _cookie(self, request, context) -> str:
        self._simulate_network(request)
        context.status_code = 200
        return "<html><body>replay</body></html>"  # no consent form: yfinance moves on

    def _crumb(self, request, context) -> str:
        self._simulate_network(request)
        context.status_code = 200
        return "replay-crumb"

    def _quote_summary(self, request, context) -> str:
        # yfinance asks quoteSummary for the timezone when the chart probe fails.
        self._simulate_network(request)
        symbol = unquote(_QUOTE_SUMMARY_URL.match(request.url)["symbol"])
        if symbol not in self._unknown:
            raise ReplayError(f"the Yahoo replay only answers quoteSummary for unknown symbols, not {symbol}")
        context.status_code = 404
        context.headers.update(_JSON)
        # Reconstruction, not a recording: Yahoo's 404 body for an unknown symbol.
        error = {"code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}
        return json.dumps({"quoteSummary": {"result": None, "error": error}})

    def _chart(self, request, context) -> str:
        symbol = unquote(CHART_URL.match(request.url)["symbol"])
        params = {k: v[-1] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.requests.append(ChartRequest(symbol, params, request.timeout))
        self._simulate_network(request)
        if self.rate_limited:
            context.status_code = 429
            context.headers["Content-Type"] = "text/plain"
            return "Too Many Requests\r\n"  # reconstruction of Yahoo's 429 body
        context.headers.update(_JSON)
        if symbol in self._unknown:
            context.status_code = 404
            # Reconstruction, not a recording: Yahoo's 404 body for an unknown symbol.
            error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
            return json.dumps({"chart": {"result": None, "error": error}})
        recording = self._recording(symbol, params)
        result = _as_of(recording.result, self._as_of)
        if "period1" in params:
            period = (int(params["period1"]), int(params["period2"]))
            keep = [] if self.empty else _in_period(result, period, recording.period)
        else:  # range=...: the latest bar
            period = (0, 0)
            keep = list(range(len(result.get("timestamp", []))))[-1:]
        context.status_code = 200
        return json.dumps({"chart": {"result": [_select(result, keep, period)], "error": None}})

    def _recording(self, symbol: str, params: dict[str, str]) -> ChartRecording:
        registered = {interval: rec for (sym, interval), rec in self._recordings.items() if sym == symbol}
        if not registered:
            raise ReplayError(f"the Yahoo replay has no recording for {symbol}; register one with add()")
        if "period1" not in params:
            return registered.get(params.get("interval", ""), next(iter(registered.values())))
        interval = params.get("interval", "")
        if interval not in registered:
            raise ReplayError(
                f"the Yahoo replay has no {interval!r} recording for {symbol} "
                f"(registered: {sorted(registered)}); register one with add(..., interval=...)"
            )
        return registered[interval]


def _utc(when: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(when)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _in_period(result: dict, period: tuple[int, int], recorded: tuple[int, int] | None) -> list[int]:
    """Indices of the bars a ``period1``/``period2`` request gets.

    Bars in ``[period1, period2)``, plus the recording's trailing bars (those after its
    own period, which Yahoo appended as its latest price) when they fall after ``period2``.
    """
    period1, period2 = period
    trailing_from = recorded[1] if recorded else None
    return [
        i
        for i, t in enumerate(result.get("timestamp", []))
        if period1 <= t < period2 or (trailing_from is not None and t >= max(trailing_from, period2))
    ]


def _select(result: dict, keep: list[int], period: tuple[int, int]) -> dict:
    """The chart result with only the bars ``keep`` and the events in ``[period1, period2)``.

    With no bars it takes the form of Yahoo's recorded empty answers: no ``timestamp``,
    no ``events`` and ``indicators == {"quote": [{}]}``.
    """
    if not keep:
        return {"meta": result["meta"], "indicators": {"quote": [{}]}}
    stamps = [result["timestamp"][i] for i in keep]
    indicators = {
        name: [{key: [values[i] for i in keep] for key, values in series[0].items()}]
        for name, series in result["indicators"].items()
    }
    out = {"meta": result["meta"], "timestamp": stamps, "indicators": indicators}
    events = {
        kind: {key: event for key, event in items.items() if period[0] <= event["date"] < period[1]}
        for kind, items in result.get("events", {}).items()
    }
    events = {kind: items for kind, items in events.items() if items}
    if events:
        out["events"] = events
    return out


def _as_of(result: dict, when: int | None) -> dict:
    """The chart result as Yahoo would have given it at ``when`` (Unix seconds)."""
    if when is None:
        return result
    out = copy.deepcopy(result)
    stamps = out.get("timestamp", [])
    n = bisect.bisect_left(stamps, when)
    if n == 0:
        return {"meta": out["meta"], "indicators": {"quote": [{}]}}
    out["timestamp"] = stamps[:n]
    quote = {key: values[:n] for key, values in out["indicators"]["quote"][0].items()}
    adjclose = out["indicators"].get("adjclose", [{}])[0].get("adjclose")
    adjclose = None if adjclose is None else adjclose[:n]
    # Yahoo's adjclose / close holds the dividends after each bar; a download at `when`
    # holds only those up to `when`, i.e. the recorded ratio over the ratio at `when`.
    last_factor = None
    if adjclose is not None:
        known = [i for i in range(n) if quote["close"][i] is not None and adjclose[i] is not None]
        last_factor = adjclose[known[-1]] / quote["close"][known[-1]] if known else None
    events = out.get("events", {})
    for split in [s for s in events.get("splits", {}).values() if s["date"] >= when]:
        ratio = split["numerator"] / split["denominator"]
        for key in _PRICE_KEYS:
            quote[key] = [None if v is None else v * ratio for v in quote[key]]
        quote["volume"] = [None if v is None else round(v / ratio) for v in quote["volume"]]
        if adjclose is not None:
            adjclose = [None if v is None else v * ratio for v in adjclose]
        for dividend in events.get("dividends", {}).values():
            if dividend["date"] < split["date"]:
                dividend["amount"] *= ratio
    if adjclose is not None and last_factor:
        adjclose = [None if v is None else v / last_factor for v in adjclose]
    out["indicators"]["quote"] = [quote]
    if adjclose is not None:
        out["indicators"]["adjclose"] = [{"adjclose": adjclose}]
    out["events"] = {
        kind: {key: event for key, event in items.items() if event["date"] < when} for kind, items in events.items()
    }
    return out
