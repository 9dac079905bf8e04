"""Requests: payloads validated into typed requests (what the server reads).

Values are taken exactly as sent: nothing is trimmed or converted from another
type, so a client bug shows up as an error naming the field, with a stable code
and a message saying what to send.

About 410 lines: every field's rule and message is here, in one place, so that
Socket.IO, REST and the OpenAPI document all read the same rules.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pandas.errors import OutOfBoundsDatetime

from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import InvalidRequestError, describe_value
from dataprovider.instruments import validate_ticker
from dataprovider.protocol.events import (
    BATCH_FIELDS,
    DATA_FIELDS,
    EARLIEST_YEAR,
    FIELD_NAME_CHARS,
    FORMATS,
    LATEST_YEAR,
    MAX_BATCH_TICKERS,
    MAX_LIMIT,
    MAX_REQUEST_ID_LENGTH,
    SUBSCRIBE_FIELDS,
    UNSUBSCRIBE_FIELDS,
)
from dataprovider.protocol.query import BarsQuery, TimeBound

# Request ids are echoed and logged: visible ASCII only, so they cannot forge log lines.
_REQUEST_ID_RE = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID_LENGTH}}}")


@dataclass(frozen=True)
class SubscribeRequest:
    """A validated ``subscribe`` request: live bars of (ticker, resolution)."""

    request_id: str
    ticker: str
    resolution: DataResolution

    @property
    def subscription_id(self) -> str:
        """The id of the subscription: one per (ticker, resolution), shared by all its subscribers."""
        return subscription_id(self.ticker, self.resolution)


@dataclass(frozen=True)
class UnsubscribeRequest:
    """A validated ``unsubscribe`` request: by the subscribe request's id, or by subscription id."""

    request_id: str | None
    subscription_id: str | None


def subscription_id(ticker: str, resolution: DataResolution) -> str:
    """The subscription id of a key, e.g. ``'live:SPY:1d'`` (also its Socket.IO room)."""
    return f"live:{ticker}:{DataResolution.parse(resolution).value}"


@dataclass(frozen=True)
class DataRequest:
    """A validated ``get_data`` request."""

    request_id: str
    query: BarsQuery
    format: str = "json"


@dataclass(frozen=True)
class BatchRequest:
    """A validated ``get_batch_data`` request.

    ``tickers`` are the valid, de-duplicated tickers in request order; ``invalid``
    maps each rejected ticker (as sent) to its INVALID_TICKER error, so the valid
    ones are still answered.
    """

    request_id: str
    query: BarsQuery
    tickers: list[str]
    invalid: dict[str, InvalidRequestError] = field(default_factory=dict)
    format: str = "json"


def new_request_id() -> str:
    """A fresh random request id."""
    return uuid.uuid4().hex


def _usable_request_id(value: object) -> bool:
    return isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value) is not None


def request_id_of(payload: object) -> str | None:
    """The request_id of a payload if it has a usable one (for echoing in errors)."""
    if isinstance(payload, dict) and _usable_request_id(payload.get("request_id")):
        return payload["request_id"]
    return None


def parse_data_request(payload: object, formats: tuple[str, ...] = FORMATS) -> DataRequest:
    """Validate a ``get_data`` payload (``formats``: the encodings the transport offers).

    Values are taken exactly as sent: nothing is trimmed or converted from
    another type, so a client bug shows up as an error naming the field.

    Raises
    ------
    InvalidRequestError
        With the code and field at fault and a message saying what to send.

    Examples
    --------
    >>> parse_data_request({"ticker": "spy", "resolution": "1d", "limit": 5}).query.ticker
    'SPY'
    >>> parse_data_request({"ticker": "SPY", "resolution": "1D"})
    Traceback (most recent call last):
    ...
    dataprovider.errors.InvalidRequestError: INVALID_RESOLUTION: resolution must be one of 1m, 2m, ...
    """
    body = _require_object(payload, DATA_FIELDS)
    ticker = validate_ticker(body.get("ticker"))
    return DataRequest(_request_id(body), _query(body, ticker), _format(body, formats))


def parse_batch_request(payload: object, formats: tuple[str, ...] = FORMATS) -> BatchRequest:
    """Validate a ``get_batch_data`` payload (invalid tickers are set aside, not fatal).

    Invalid entries are keyed by the string sent, or ``tickers[i]`` for an entry
    that is not a string, so no two entries share a key.

    Raises
    ------
    InvalidRequestError
        If the payload or any shared field is malformed, or the ticker list is
        not a list of 1 to MAX_BATCH_TICKERS entries.

    Examples
    --------
    >>> batch = parse_batch_request({"tickers": ["SPY", "aapl", "SPY", "../x"], "limit": 10})
    >>> batch.tickers, batch.query.limit
    (['SPY', 'AAPL'], 10)
    >>> {ticker: error.code for ticker, error in batch.invalid.items()}
    {'../x': 'INVALID_TICKER'}
    """
    body = _require_object(payload, BATCH_FIELDS)
    raw = body.get("tickers")
    if not isinstance(raw, list):
        problem = "tickers is missing" if raw is None else f"tickers must be a list, not {describe_value(raw)}"
        raise InvalidRequestError(
            f"{problem}: send a list of symbols such as ['SPY', 'AAPL']", code="INVALID_PAYLOAD", field="tickers"
        )
    if not raw:
        raise InvalidRequestError("tickers is empty: send at least one symbol", code="INVALID_PAYLOAD", field="tickers")
    if len(raw) > MAX_BATCH_TICKERS:
        raise InvalidRequestError(
            f"tickers has {len(raw)} entries; a batch may have at most {MAX_BATCH_TICKERS}: split it",
            code="BATCH_TOO_LARGE",
            field="tickers",
            details={"max": MAX_BATCH_TICKERS},
        )
    tickers: dict[str, None] = {}  # an ordered set
    invalid: dict[str, InvalidRequestError] = {}
    for position, item in enumerate(raw):
        try:
            tickers[validate_ticker(item, field="tickers[]")] = None
        except InvalidRequestError as exc:
            exc.ticker = item[:64] if isinstance(item, str) else f"tickers[{position}]"
            invalid[exc.ticker] = exc
    placeholder = next(iter(tickers), "SPY")
    query = _query(body, placeholder)
    return BatchRequest(_request_id(body), query, list(tickers), invalid, _format(body, formats))


def parse_subscribe_request(payload: object) -> SubscribeRequest:
    """Validate a ``subscribe`` payload: the same rules, codes and messages as ``get_data``.

    Raises
    ------
    InvalidRequestError
        With the code and field at fault and a message saying what to send.

    Examples
    --------
    >>> parse_subscribe_request({"ticker": "spy", "resolution": "1m"}).subscription_id
    'live:SPY:1m'
    """
    body = _require_object(payload, SUBSCRIBE_FIELDS)
    ticker = validate_ticker(body.get("ticker"))
    resolution = _enum(DataResolution, body.get("resolution", "1d"), "resolution", "INVALID_RESOLUTION")
    return SubscribeRequest(_request_id(body), ticker, resolution)


def parse_unsubscribe_request(payload: object) -> UnsubscribeRequest:
    """Validate an ``unsubscribe`` payload: ``subscription_id``, or the ``request_id`` of the subscribe.

    Raises
    ------
    InvalidRequestError
        INVALID_PAYLOAD when neither is given, or either is not a usable id.
    """
    body = _require_object(payload, UNSUBSCRIBE_FIELDS)
    request_id = None if body.get("request_id") is None else _request_id(body)
    value = body.get("subscription_id")
    if value is not None and not _usable_request_id(value):
        raise InvalidRequestError(
            f"subscription_id must be the id a subscribed reply gave (such as 'live:SPY:1d'); "
            f"got {describe_value(value)}",
            code="INVALID_PAYLOAD",
            field="subscription_id",
        )
    if request_id is None and value is None:
        raise InvalidRequestError(
            "send the subscription_id of the subscription to end, or the request_id of its subscribe",
            code="INVALID_PAYLOAD",
            field="subscription_id",
        )
    return UnsubscribeRequest(request_id, value)


def _require_object(payload: object, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidRequestError(
            f"the payload must be one JSON object with fields {', '.join(allowed)}; got {describe_value(payload)}",
            code="INVALID_PAYLOAD",
        )
    unknown = sorted(str(k) for k in payload if k not in allowed)
    if unknown:
        shown = ", ".join(describe_value(name) for name in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise InvalidRequestError(
            f"unknown field(s) {shown}{more}: the allowed fields are {', '.join(allowed)}",
            code="INVALID_PAYLOAD",
            field=unknown[0][:FIELD_NAME_CHARS],
            details={"allowed": list(allowed)},
        )
    return payload


def _request_id(body: dict[str, Any]) -> str:
    value = body.get("request_id")
    if value is None:
        return new_request_id()
    if not _usable_request_id(value):
        raise InvalidRequestError(
            f"request_id must be 1 to {MAX_REQUEST_ID_LENGTH} visible ASCII characters (letters, digits, "
            f"punctuation; no spaces), or left out for the server to choose one; got {describe_value(value)}",
            code="INVALID_PAYLOAD",
            field="request_id",
        )
    return value


def _query(body: dict[str, Any], ticker: str) -> BarsQuery:
    resolution = _enum(DataResolution, body.get("resolution", "1d"), "resolution", "INVALID_RESOLUTION")
    period = _enum(DataPeriod, body.get("period", "1y"), "period", "INVALID_PERIOD")
    start = _time_bound(body.get("time_start"), "time_start")
    end = _time_bound(body.get("time_end"), "time_end")
    if start is not None and end is not None and _inverted(start, end):
        raise InvalidRequestError(
            f"time_start ({start.isoformat()}) is after time_end ({end.isoformat()}): swap them",
            code="INVALID_TIME_RANGE",
            field="time_start",
        )
    local_only = body.get("local_only", True)
    if not isinstance(local_only, bool):
        raise InvalidRequestError(
            f"local_only must be true or false (a JSON boolean); got {describe_value(local_only)}",
            code="INVALID_PAYLOAD",
            field="local_only",
            details={"allowed": [True, False]},
        )
    return BarsQuery(ticker, resolution, period, start, end, _limit(body.get("limit")), local_only)


def _enum(enum_cls, value: object, name: str, code: str):
    if isinstance(value, str):
        try:
            return enum_cls(value)  # a lookup by value; the list of values is built only for the error
        except ValueError:
            pass
    raise InvalidRequestError(
        f"{name} must be one of {', '.join(enum_cls.values())}; got {describe_value(value)}",
        code=code,
        field=name,
        details={"allowed": enum_cls.values()},
    )


_TIME_BOUND_FIX = (
    "send a date 'YYYY-MM-DD' or an ISO-8601 datetime 'YYYY-MM-DDTHH:MM[:SS[.fraction]]' "
    "with an optional 'Z' or '+HH:MM' (e.g. '2015-01-02' or '2015-01-02T14:30:00Z')"
)


def _time_bound(value: object, name: str) -> TimeBound | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"{name} must be a string; got {describe_value(value)}: {_TIME_BOUND_FIX}",
            code="INVALID_TIME_RANGE",
            field=name,
        )
    try:
        bound = TimeBound.parse(value)
    except OutOfBoundsDatetime:
        bound = None  # a year pandas cannot hold: out of range below
    except ValueError as exc:
        hint = " (in a URL, write '+' as %2B)" if _looks_like_lost_plus(value) else ""
        raise InvalidRequestError(
            f"{name} {describe_value(value)} could not be read ({exc}): {_TIME_BOUND_FIX}{hint}",
            code="INVALID_TIME_RANGE",
            field=name,
        ) from None
    if bound is None or not EARLIEST_YEAR <= bound.value.year <= LATEST_YEAR:
        raise InvalidRequestError(
            f"{name} {describe_value(value)} is out of range: use a time in the years {EARLIEST_YEAR} to {LATEST_YEAR}",
            code="INVALID_TIME_RANGE",
            field=name,
            details={"min": f"{EARLIEST_YEAR}-01-01", "max": f"{LATEST_YEAR}-12-31"},
        )
    return bound


def _looks_like_lost_plus(value: str) -> bool:
    """Whether a '+' offset was decoded as a space (an unencoded '+' in a URL query)."""
    head, space, tail = value.rpartition(" ")
    if not space or not head:
        return False
    try:
        TimeBound.parse(f"{head}+{tail}")
    except ValueError:
        return False
    return True


def _comparable(bound: TimeBound) -> pd.Timestamp:
    value = bound.value
    return value.tz_convert("UTC").tz_localize(None) if value.tzinfo is not None else value


# Naive times are read in the exchange's timezone, which validation does not know:
# comparing a naive bound with a tz-aware one is only certain beyond any UTC offset.
_MAX_UTC_OFFSET = pd.Timedelta(hours=14)


def _inverted(start: TimeBound, end: TimeBound) -> bool:
    """Whether ``start`` surely comes after the last instant ``end`` admits."""
    first = _comparable(start)
    last = _comparable(end) + (
        pd.Timedelta(days=1) - pd.Timedelta(microseconds=1) if end.date_only else pd.Timedelta(0)
    )
    mixed = (start.value.tzinfo is None) != (end.value.tzinfo is None)
    return first > last + (_MAX_UTC_OFFSET if mixed else pd.Timedelta(0))


def _limit(value: object) -> int | None:
    if value is None:
        return None
    whole = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value) and value.is_integer()
    )
    if not whole or not 1 <= value <= MAX_LIMIT:
        raise InvalidRequestError(
            f"limit must be a whole number from 1 to {MAX_LIMIT} (the last N rows), or null for all rows; "
            f"got {describe_value(value)}",
            code="INVALID_LIMIT",
            field="limit",
            details={"min": 1, "max": MAX_LIMIT},
        )
    return int(value)


def _format(body: dict[str, Any], formats: tuple[str, ...]) -> str:
    value = body.get("format", "json")
    if not isinstance(value, str) or value not in formats:
        raise InvalidRequestError(
            f"format must be one of {', '.join(formats)}; got {describe_value(value)}",
            code="INVALID_FORMAT",
            field="format",
            details={"allowed": list(formats)},
        )
    return value


_MAX_INT_DIGITS = 100


def read_json_int(text: str) -> int | float:
    """A JSON integer literal as Python reads it here: exactly, or as a float past 100 digits.

    Used as ``parse_int`` wherever request JSON is decoded. Converting a long
    digit string to an int costs time quadratic in its length (Python refuses
    past 4300 digits), so such numbers become floats (maybe ``inf``), which
    validation then refuses with an error naming the field, like any other
    out-of-range number.

    Examples
    --------
    >>> read_json_int("42"), read_json_int("1" + "0" * 100)
    (42, 1e+100)
    """
    return int(text) if len(text) <= _MAX_INT_DIGITS else float(text)
