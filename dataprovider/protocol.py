"""The wire protocol, defined once for the server and the client: events, payload
validation, and frame encoding.

docs/PROTOCOL.md describes the same in prose for clients in other languages.

Frames travel in one of two encodings:

* ``arrow``: Arrow IPC stream bytes, split into chunks of at most
  :data:`CHUNK_BYTES` so every binary Socket.IO attachment stays under the
  transport's message limit (the Python client's default);
* ``json``: ``{"format", "index_name", "timezone", "columns", "index", "data"}``
  with ISO-8601 timestamps, for any other client (one message, not chunked).

Nothing is ever pickled in either direction.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.errors import OutOfBoundsDatetime
from socketio.packet import Packet

from .bars import Bars, frame_from_batches, frame_from_table
from .enums import DataPeriod, DataResolution
from .errors import DataProviderError, InvalidRequestError, describe_value
from .frames import OHLCV_COLUMNS, empty_frame
from .instruments import validate_ticker
from .query import BarsQuery, TimeBound

__all__ = [
    "ARROW_MIME",
    "BATCH_ERROR",
    "BATCH_PROGRESS",
    "BATCH_RESPONSE",
    "CANCEL",
    "CHUNK_BYTES",
    "CONNECTION_RESPONSE",
    "DATA_ERROR",
    "DATA_RESPONSE",
    "DATA_STATUS",
    "EARLIEST_YEAR",
    "GET_BATCH_DATA",
    "GET_DATA",
    "LATEST_YEAR",
    "MAX_BATCH_TICKERS",
    "MAX_LIMIT",
    "MAX_MESSAGE_BYTES",
    "PROGRESS_INTERVAL",
    "PROTOCOL_VERSION",
    "REST_FORMATS",
    "BatchRequest",
    "DataRequest",
    "WirePacket",
    "check_query_string",
    "decode_frame",
    "encode_bars",
    "parse_batch_request",
    "parse_data_request",
    "parse_json_body",
    "payload_from_query_args",
    "read_json_int",
]

PROTOCOL_VERSION = 1

# Client -> server events.
GET_DATA = "get_data"
GET_BATCH_DATA = "get_batch_data"
CANCEL = "cancel"  # {request_id}: drop the rest of a request the client stopped waiting for
SUBSCRIBE = "subscribe"  # {request_id, ticker, resolution}: live bars of one key
UNSUBSCRIBE = "unsubscribe"  # {request_id} or {subscription_id}
# Server -> client events.
CONNECTION_RESPONSE = "connection_response"
DATA_RESPONSE = "data_response"
DATA_ERROR = "data_error"
DATA_STATUS = "data_status"
BATCH_RESPONSE = "batch_response"
BATCH_ERROR = "batch_error"
BATCH_PROGRESS = "batch_progress"
SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
BAR_UPDATE = "bar_update"
SUBSCRIPTION_ERROR = "subscription_error"

#: Largest binary attachment sent (about), below python-socketio's default 1 MB message limit.
CHUNK_BYTES = 900_000
# Room left in each message for its header, and for padding of its buffers to 8 bytes.
_MESSAGE_OVERHEAD = 4096
#: Most tickers one batch may ask for.
MAX_BATCH_TICKERS = 1000
#: Largest ``limit`` accepted.
MAX_LIMIT = 10_000_000
#: Longest request_id accepted.
MAX_REQUEST_ID_LENGTH = 128

#: Frame encodings over Socket.IO, and over REST (which adds CSV).
FORMATS = ("json", "arrow")
REST_FORMATS = ("json", "csv", "arrow")
#: Media type of an Arrow IPC stream (REST ``format=arrow``).
ARROW_MIME = "application/vnd.apache.arrow.stream"
#: Years a time bound may name (as written, before any timezone conversion).
EARLIEST_YEAR = 1900
LATEST_YEAR = 2199
#: Largest Socket.IO message or REST request body the server reads (bytes); a longer
#: Socket.IO message closes the connection, a longer REST body is REQUEST_TOO_LARGE.
MAX_MESSAGE_BYTES = 1_000_000
# Request ids are echoed and logged: visible ASCII only, so they cannot forge log lines.
_REQUEST_ID_RE = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID_LENGTH}}}")
# Longest unknown field name echoed back as an error's ``field``.
_FIELD_NAME_CHARS = 64

_QUERY_FIELDS = ("request_id", "resolution", "period", "time_start", "time_end", "limit", "local_only", "format")
DATA_FIELDS = ("ticker", *_QUERY_FIELDS)
BATCH_FIELDS = ("tickers", *_QUERY_FIELDS)


SUBSCRIBE_FIELDS = ("request_id", "ticker", "resolution")
UNSUBSCRIBE_FIELDS = ("request_id", "subscription_id")


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


def bar_payload(time: pd.Timestamp, row: Any) -> dict[str, Any]:
    """One bar on the wire: ``time`` (ISO-8601, exchange timezone), then OHLCV (float prices, volume as stored)."""
    volume = row.Volume
    return {
        "time": time.isoformat(),
        "open": float(row.Open),
        "high": float(row.High),
        "low": float(row.Low),
        "close": float(row.Close),
        "volume": volume.item() if hasattr(volume, "item") else volume,
    }


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
            field=unknown[0][:_FIELD_NAME_CHARS],
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
    local_only = body.get("local_only", False)
    if not isinstance(local_only, bool):
        raise InvalidRequestError(
            f"local_only must be true or false (a JSON boolean); got {describe_value(local_only)}",
            code="INVALID_PAYLOAD",
            field="local_only",
            details={"allowed": [True, False]},
        )
    return BarsQuery(ticker, resolution, period, start, end, _limit(body.get("limit")), local_only)


def _enum(enum_cls, value: object, name: str, code: str):
    if isinstance(value, str) and value in enum_cls.values():
        return enum_cls(value)
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


# ------------------------------------------------------------------ frames
def encode_bars(bars: Bars, fmt: str) -> dict[str, Any]:
    """Bars as a payload part in format ``fmt`` ('arrow' or 'json').

    Examples
    --------
    >>> part = encode_bars(Bars.from_frame(frame), "arrow")              # doctest: +SKIP
    >>> decode_frame(part).equals(frame)
    True
    """
    if fmt == "arrow":
        return {"format": "arrow", "chunks": arrow_messages(bars.wire_table())}
    return {"format": "json", **frame_to_json(bars.to_frame())}


def decode_frame(part: dict[str, Any]) -> pd.DataFrame:
    """The frame of a payload part made by :func:`encode_bars` (or a JSON server reply).

    An Arrow part is consumed: its chunks are freed as they are decoded, so
    decoding it twice fails.

    Raises
    ------
    ValueError
        If the part is not a frame in a known format.
    """
    fmt = part.get("format")
    if fmt == "arrow":
        return frame_from_batches(*batches_from_messages(part["chunks"]))
    if fmt == "json":
        return frame_from_json(part)
    raise ValueError(f"unknown frame format {fmt!r}")


def arrow_messages(table: pa.Table) -> list[bytes]:
    """A table as chunks of whole Arrow IPC messages, each chunk at most about :data:`CHUNK_BYTES`.

    Joined, the chunks (plus the end-of-stream marker) are an Arrow IPC stream:
    the schema message, then record batches sized to fit a chunk. Each chunk
    travels as one binary attachment; a small table is a single chunk. The
    client reads each chunk in place, without joining them first, so it never
    holds the bytes twice.
    """
    room = CHUNK_BYTES - _MESSAGE_OVERHEAD
    rows_per_batch = max(1, room * table.num_rows // max(table.nbytes, 1))
    messages = [table.schema.serialize()]
    messages += [batch.serialize() for batch in table.to_batches(max_chunksize=rows_per_batch)]
    chunks: list[list[pa.Buffer]] = [[]]
    size = 0
    for message in messages:
        if chunks[-1] and size + message.size > CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(message)
        size += message.size
    return [b"".join(chunk) for chunk in chunks]


def batches_from_messages(chunks: list[bytes]) -> tuple[pa.Schema, list[list[pa.RecordBatch]]]:
    """The schema and, per chunk, the record batches of :func:`arrow_messages`' output.

    The batches are read in place (not copied) and the chunks are taken out of
    ``chunks``: afterwards each chunk lives only as long as its batches, which
    :func:`~dataprovider.bars.frame_from_batches` drops one group at a time.
    """
    schema, groups = None, []
    for number in range(len(chunks)):
        chunk, chunks[number] = chunks[number], None
        group = []
        for message in pa.ipc.MessageReader.open_stream(pa.py_buffer(chunk)):
            if schema is None:
                schema = pa.ipc.read_schema(message)
            else:
                group.append(pa.ipc.read_record_batch(message, schema))
        groups.append(group)
    return schema, groups


def arrow_stream(table: pa.Table) -> bytes:
    """A table as Arrow IPC stream bytes (the REST API's ``format=arrow``)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def frame_from_arrow(data: bytes) -> pd.DataFrame:
    """The frame in Arrow IPC stream bytes."""
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return frame_from_table(reader.read_all())


def frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    """``{"index_name", "timezone", "columns", "index", "data"}`` with ISO-8601 timestamps."""
    index = frame.index
    return {
        "index_name": index.name,
        "timezone": str(index.tz) if getattr(index, "tz", None) is not None else None,
        "columns": list(frame.columns),
        "index": [ts.isoformat() for ts in index],
        "data": [list(row) for row in zip(*(_json_column(frame[c]) for c in frame.columns), strict=True)],
    }


def _json_column(column: pd.Series) -> list[Any]:
    """Exact JSON values of a column (floats keep every digit; NaN becomes null)."""
    values = column.tolist()
    if column.dtype.kind == "f":
        return [None if math.isnan(v) else v for v in values]
    return values


def frame_from_json(part: dict[str, Any]) -> pd.DataFrame:
    """The frame of :func:`frame_to_json`'s output."""
    index = pd.DatetimeIndex(pd.to_datetime(part["index"], utc=True), name=part.get("index_name"))
    if part.get("timezone"):
        index = index.tz_convert(part["timezone"])
    frame = pd.DataFrame(part["data"], columns=part["columns"], index=index.as_unit("ns"))
    for column in OHLCV_COLUMNS[:4]:
        if column in frame:
            frame[column] = frame[column].astype("float64")
    if "Volume" in frame:
        frame["Volume"] = frame["Volume"].astype("int64")
    return frame


# ---------------------------------------------------------------- replies
def error_reply(request_id: str | None, error: DataProviderError) -> dict[str, Any]:
    """The payload of a ``data_error`` / ``batch_error`` reply (and of REST error bodies)."""
    return {"request_id": request_id, **error.to_payload()}


def data_reply(request_id: str, summary: dict[str, Any], bars: Bars, fmt: str) -> dict[str, Any]:
    """The payload of a ``data_response``: the result's summary plus the encoded bars."""
    return {"request_id": request_id, **summary, "data": encode_bars(bars, fmt)}


#: Least time between two ``batch_progress`` events of one batch: tickers that
#: finish sooner after the last event wait for the next one (they are listed in
#: its ``items``), so a batch answered from memory sends a handful of events, not
#: one per ticker.
PROGRESS_INTERVAL = 0.05


def progress_item(ticker: str, index: int, total: int, outcome: dict[str, Any] | DataProviderError) -> dict[str, Any]:
    """What a ``batch_progress`` event says of one finished ticker.

    ``index`` counts finished tickers (1-based), so ``progress`` reads 'i/n' and
    the items stay meaningful whatever order a client handles them in.
    """
    failed = isinstance(outcome, DataProviderError)
    return {
        "ticker": ticker,
        "index": index,
        "total": total,
        "progress": f"{index}/{total}",
        "status": "error" if failed else "ok",
        "rows": 0 if failed else outcome["rows"],
        "error": outcome.to_payload() if failed else None,
    }


def progress_reply(request_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The payload of a ``batch_progress`` event: the last finished ticker's fields, and ``items``, all of them."""
    return {"request_id": request_id, **items[-1], "items": items}


def batch_reply(
    request_id: str,
    results: dict[str, tuple[dict[str, Any], Bars]],
    errors: dict[str, DataProviderError],
    elapsed: float,
    fmt: str,
    index_name: str = "Date",
) -> dict[str, Any]:
    """The payload of a ``batch_response``: per-ticker summaries and bars, and per-ticker errors.

    In ``json`` each result carries its own ``data``. In ``arrow`` every
    ticker's bars travel together as one Arrow stream (``data``), one ticker
    after another in the order of ``results``, with the times in UTC; each
    result gives the ``offset`` of its first row (and its ``rows`` and
    ``timezone``), so one message of a few chunks carries the whole batch.
    """
    reply: dict[str, Any] = {
        "request_id": request_id,
        "total": len(results) + len(errors),
        "succeeded": len(results),
        "failed": len(errors),
        "elapsed": round(elapsed, 6),
        "errors": {ticker: error.to_payload() for ticker, error in errors.items()},
    }
    if fmt != "arrow":
        reply["results"] = {t: {**summary, "data": encode_bars(bars, fmt)} for t, (summary, bars) in results.items()}
        return reply
    offsets = np.cumsum([0, *(len(bars) for _, bars in results.values())])
    reply["results"] = {
        ticker: {**summary, "offset": int(offset)}
        for (ticker, (summary, _)), offset in zip(results.items(), offsets[:-1], strict=True)
    }
    stacked = _stacked([bars for _, bars in results.values()], index_name)
    reply["data"] = {"format": "arrow", "chunks": arrow_messages(stacked)}
    return reply


def _stacked(parts: list[Bars], index_name: str) -> pa.Table:
    """Several tickers' bars as one table, times in UTC (each ticker's timezone travels in its summary)."""
    if not parts:
        return Bars.from_frame(empty_frame(DataResolution.DAY_01, "UTC").rename_axis(index_name)).table
    times = pa.array(np.concatenate([bars.times for bars in parts]), pa.timestamp("ns", "UTC"))
    columns = {
        name: pa.concat_arrays([chunk for bars in parts for chunk in bars.table.column(name).chunks])
        for name in parts[0].table.schema.names[1:]
    }
    return pa.table({parts[0].index_name: times, **columns})


def frames_from_batch_reply(reply: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Each ticker's frame from a ``batch_response`` in either format."""
    if "data" not in reply:
        return {ticker: decode_frame(result["data"]) for ticker, result in reply["results"].items()}
    stacked = decode_frame(reply["data"])
    # One conversion per timezone, then a cheap slice per ticker.
    zoned = {zone: stacked.tz_convert(zone) for zone in {r["timezone"] for r in reply["results"].values()}}
    return {
        ticker: zoned[result["timezone"]].iloc[result["offset"] : result["offset"] + result["rows"]]
        for ticker, result in reply["results"].items()
    }


# ------------------------------------------------------- REST and raw JSON
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


def parse_json_body(body: bytes) -> object:
    """Decode a REST request body as JSON (any JSON value; the payload parsers check the shape).

    Raises
    ------
    InvalidRequestError
        INVALID_PAYLOAD, saying where the JSON breaks, for bodies that are not
        UTF-8 JSON (or are nested too deeply to decode).

    Examples
    --------
    >>> parse_json_body(b'{"tickers": ["SPY"]}')
    {'tickers': ['SPY']}
    """
    try:
        return json.loads(body, parse_int=read_json_int)
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except UnicodeDecodeError:
        reason = "it is not UTF-8 text"
    except RecursionError:
        reason = "it is nested too deeply"
    raise InvalidRequestError(
        f'the body is not valid JSON ({reason}): send one JSON object such as {{"tickers": ["SPY", "AAPL"]}}',
        code="INVALID_PAYLOAD",
    )


class _WireJSON:
    """The JSON codec of incoming Socket.IO packets: the standard library's, with :func:`read_json_int`."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, parse_int=read_json_int, **kwargs)


class WirePacket(Packet):
    """Socket.IO packets as the server decodes them (``socketio.Server(serializer=WirePacket)``).

    python-socketio's own codec drops a whole message holding an integer of
    more than 100 digits (logging an error, answering nothing); this one reads
    it as a float, so the request gets its INVALID_* reply like any other.
    """

    json = _WireJSON


_PERCENT_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def check_query_string(raw: bytes) -> None:
    """Refuse a URL query string that is not percent-encoded UTF-8, naming the parameter at fault.

    Werkzeug decodes such strings leniently (keeping '%ZZ' as written and
    invalid UTF-8 as escapes), which would turn an encoding mistake into a
    puzzling value; this says what is wrong instead.

    Raises
    ------
    InvalidRequestError
        INVALID_PAYLOAD with ``field`` = the parameter's name (as far as it decodes).

    Examples
    --------
    >>> check_query_string(b"start=2015-01-01&limit=5")
    >>> check_query_string(b"start=%FF")
    Traceback (most recent call last):
    ...
    dataprovider.errors.InvalidRequestError: INVALID_PAYLOAD: parameter 'start' does not decode to UTF-8 text: ...
    """
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        bad_escape = _PERCENT_ESCAPE.search(part)
        try:
            for text in (name, value):
                urllib.parse.unquote_to_bytes(text.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            problem = "does not decode to UTF-8 text: percent-encode the UTF-8 bytes of each character (é is %C3%A9)"
        else:
            if bad_escape is None:
                continue
            shown = part[bad_escape.start() : bad_escape.start() + 3].decode("latin-1")
            problem = f"has {shown!r}, which is no percent-escape: write a literal '%' as %25"
        field = urllib.parse.unquote(name.decode("latin-1"), errors="replace")[:_FIELD_NAME_CHARS]
        raise InvalidRequestError(f"parameter {describe_value(field)} {problem}", code="INVALID_PAYLOAD", field=field)


def payload_from_query_args(ticker: str, args: Any) -> dict[str, Any]:
    """Turn REST query parameters (a werkzeug MultiDict) into a ``get_data`` payload.

    ``start``/``end`` are accepted for ``time_start``/``time_end``; ``limit`` is
    read like a JSON number and ``local_only`` from a word (true/1/yes,
    false/0/no, any case). Each parameter may be given once.

    Raises
    ------
    InvalidRequestError
        For repeated, unknown or unparsable parameters.

    Examples
    --------
    >>> from werkzeug.datastructures import MultiDict
    >>> payload_from_query_args("SPY", MultiDict({"start": "2015-01-01", "limit": "5", "local_only": "yes"}))
    {'ticker': 'SPY', 'time_start': '2015-01-01', 'limit': 5, 'local_only': True}
    """
    allowed = sorted({*_QUERY_ALIASES, *_QUERY_FIELDS} - {"request_id"})
    payload: dict[str, Any] = {"ticker": ticker}
    for name in args:
        field = name[:_FIELD_NAME_CHARS]
        if name not in allowed:
            raise InvalidRequestError(
                f"unknown parameter {describe_value(name)}: the allowed parameters are {', '.join(allowed)}",
                code="INVALID_PAYLOAD",
                field=field,
                details={"allowed": allowed},
            )
        values = args.getlist(name)
        if len(values) != 1:
            raise InvalidRequestError(
                f"parameter {name!r} is given {len(values)} times; give it once", code="INVALID_PAYLOAD", field=field
            )
        key = _QUERY_ALIASES.get(name, name)
        if key in payload:
            raise InvalidRequestError(
                f"parameter {name!r} repeats another name for {key}: give only one of them",
                code="INVALID_PAYLOAD",
                field=field,
            )
        payload[key] = values[0]
    if "limit" in payload:
        payload["limit"] = _limit_from_text(payload["limit"])
    if "local_only" in payload:
        text = payload["local_only"]
        if text.lower() not in _BOOLEAN_WORDS:
            raise InvalidRequestError(
                f"local_only must be true or false (or 1/0, yes/no); got {describe_value(text)}",
                code="INVALID_PAYLOAD",
                field="local_only",
                details={"allowed": list(_BOOLEAN_WORDS)},
            )
        payload["local_only"] = _BOOLEAN_WORDS[text.lower()]
    return payload


_QUERY_ALIASES = {"start": "time_start", "end": "time_end"}
_BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_JSON_NUMBER = re.compile(r"-?\d+(?P<float>(?:\.\d+)?(?:[eE][+-]?\d+)?)", re.ASCII)


def _limit_from_text(text: str) -> int | float:
    """``limit`` read as a JSON number would be (no spaces, '_' or non-ASCII digits); :func:`_limit` checks it."""
    match = _JSON_NUMBER.fullmatch(text)
    if match is None:
        raise InvalidRequestError(
            f"limit must be a whole number from 1 to {MAX_LIMIT}, written in digits; got {describe_value(text)}",
            code="INVALID_LIMIT",
            field="limit",
            details={"min": 1, "max": MAX_LIMIT},
        )
    return float(text) if match["float"] else read_json_int(text)
