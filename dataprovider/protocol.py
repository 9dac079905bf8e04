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

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .bars import Bars, frame_from_batches, frame_from_table
from .enums import DataPeriod, DataResolution
from .errors import DataProviderError, InvalidRequestError
from .frames import OHLCV_COLUMNS, empty_frame
from .instruments import validate_ticker
from .query import BarsQuery, TimeBound

__all__ = [
    "BATCH_ERROR",
    "BATCH_PROGRESS",
    "BATCH_RESPONSE",
    "CANCEL",
    "CHUNK_BYTES",
    "CONNECTION_RESPONSE",
    "DATA_ERROR",
    "DATA_RESPONSE",
    "DATA_STATUS",
    "GET_BATCH_DATA",
    "GET_DATA",
    "MAX_BATCH_TICKERS",
    "MAX_LIMIT",
    "PROGRESS_INTERVAL",
    "PROTOCOL_VERSION",
    "BatchRequest",
    "DataRequest",
    "decode_frame",
    "encode_bars",
    "parse_batch_request",
    "parse_data_request",
]

PROTOCOL_VERSION = 1

# Client -> server events.
GET_DATA = "get_data"
GET_BATCH_DATA = "get_batch_data"
CANCEL = "cancel"  # {request_id}: drop the rest of a request the client stopped waiting for
# Server -> client events.
CONNECTION_RESPONSE = "connection_response"
DATA_RESPONSE = "data_response"
DATA_ERROR = "data_error"
DATA_STATUS = "data_status"
BATCH_RESPONSE = "batch_response"
BATCH_ERROR = "batch_error"
BATCH_PROGRESS = "batch_progress"

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
_EARLIEST = pd.Timestamp("1900-01-01")
_LATEST = pd.Timestamp("2200-01-01")

_QUERY_FIELDS = ("request_id", "resolution", "period", "time_start", "time_end", "limit", "local_only", "format")
DATA_FIELDS = ("ticker", *_QUERY_FIELDS)
BATCH_FIELDS = ("tickers", *_QUERY_FIELDS)


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


def request_id_of(payload: object) -> str | None:
    """The request_id of a payload if it has a usable one (for echoing in errors)."""
    if isinstance(payload, dict):
        value = payload.get("request_id")
        if isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
            return value
    return None


def parse_data_request(payload: object, formats: tuple[str, ...] = FORMATS) -> DataRequest:
    """Validate a ``get_data`` payload (``formats``: the encodings the transport offers).

    Raises
    ------
    InvalidRequestError
        With the code and field at fault and a message saying what to send.

    Examples
    --------
    >>> parse_data_request({"ticker": "spy", "resolution": "1d", "limit": 5}).query.ticker
    'SPY'
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
        raise InvalidRequestError(
            f"tickers must be a list of symbols such as ['SPY', 'AAPL']; got {type(raw).__name__}",
            code="INVALID_PAYLOAD",
            field="tickers",
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
    tickers: list[str] = []
    invalid: dict[str, InvalidRequestError] = {}
    for position, item in enumerate(raw):
        try:
            ticker = validate_ticker(item, field="tickers[]")
        except InvalidRequestError as exc:
            exc.ticker = item[:64] if isinstance(item, str) else f"tickers[{position}]"
            invalid[exc.ticker] = exc
            continue
        if ticker not in tickers:
            tickers.append(ticker)
    placeholder = tickers[0] if tickers else "SPY"
    query = _query(body, placeholder)
    return BatchRequest(_request_id(body), query, tickers, invalid, _format(body, formats))


def _require_object(payload: object, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidRequestError(
            f"the payload must be an object (a dict / JSON object) with fields {', '.join(allowed)}; "
            f"got {type(payload).__name__}",
            code="INVALID_PAYLOAD",
        )
    unknown = sorted(str(k) for k in payload if k not in allowed)
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) {', '.join(map(repr, unknown))}: the allowed fields are {', '.join(allowed)}",
            code="INVALID_PAYLOAD",
            field=unknown[0],
        )
    return payload


def _request_id(body: dict[str, Any]) -> str:
    value = body.get("request_id")
    if value is None:
        return new_request_id()
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
        raise InvalidRequestError(
            f"request_id must be a non-empty string of at most {MAX_REQUEST_ID_LENGTH} characters",
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
            f"local_only must be true or false; got {local_only!r}", code="INVALID_PAYLOAD", field="local_only"
        )
    return BarsQuery(ticker, resolution, period, start, end, _limit(body.get("limit")), local_only)


def _enum(enum_cls, value: object, name: str, code: str):
    try:
        return enum_cls.parse(value)
    except ValueError:
        raise InvalidRequestError(
            f"{name} must be one of {', '.join(enum_cls.values())}; got {value!r}",
            code=code,
            field=name,
            details={"allowed": enum_cls.values()},
        ) from None


def _time_bound(value: object, name: str) -> TimeBound | None:
    if value is None:
        return None
    try:
        bound = TimeBound.parse(value)
    except (ValueError, TypeError, OverflowError):
        raise InvalidRequestError(
            f"{name} must be a date 'YYYY-MM-DD' or an ISO-8601 datetime such as '2015-01-02T14:30:00Z'; "
            f"got {str(value)[:40]!r}",
            code="INVALID_TIME_RANGE",
            field=name,
        ) from None
    if not _EARLIEST <= _comparable(bound) < _LATEST:
        raise InvalidRequestError(
            f"{name} {bound.isoformat()} is out of range: use a date between 1900 and 2199",
            code="INVALID_TIME_RANGE",
            field=name,
        )
    return bound


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
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not (math.isfinite(value) and value.is_integer()))
    ):
        raise InvalidRequestError(
            f"limit must be a whole number of rows from 1 to {MAX_LIMIT}, or null for all; got {value!r}",
            code="INVALID_LIMIT",
            field="limit",
        )
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidRequestError(
            f"limit must be from 1 to {MAX_LIMIT} rows, or null for all; got {value!r}",
            code="INVALID_LIMIT",
            field="limit",
            details={"min": 1, "max": MAX_LIMIT},
        )
    return int(value)


def _format(body: dict[str, Any], formats: tuple[str, ...]) -> str:
    value = body.get("format", "json")
    if value not in formats:
        raise InvalidRequestError(
            f"format must be one of {', '.join(formats)}; got {value!r}",
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


def payload_from_query_args(ticker: str, args: Any) -> dict[str, Any]:
    """Turn REST query parameters (a werkzeug MultiDict) into a ``get_data`` payload.

    ``start``/``end`` are accepted for ``time_start``/``time_end``; ``limit`` and
    ``local_only`` are parsed from text. Each parameter may be given once.

    Raises
    ------
    InvalidRequestError
        For repeated, unknown or unparsable parameters.
    """
    aliases = {"start": "time_start", "end": "time_end"}
    allowed = sorted({*aliases, *_QUERY_FIELDS} - {"request_id"})
    payload: dict[str, Any] = {"ticker": ticker}
    for name in args:
        values = args.getlist(name)
        if len(values) != 1:
            raise InvalidRequestError(
                f"parameter {name!r} is given {len(values)} times; give it once", code="INVALID_PAYLOAD", field=name
            )
        if name not in allowed:
            raise InvalidRequestError(
                f"unknown parameter {name!r}: the allowed parameters are {', '.join(allowed)}",
                code="INVALID_PAYLOAD",
                field=name,
            )
        field = aliases.get(name, name)
        if field in payload:
            raise InvalidRequestError(
                f"parameter {name!r} repeats another name for {field}: give only one of them",
                code="INVALID_PAYLOAD",
                field=name,
            )
        payload[field] = values[0]
    if "limit" in payload:
        text = payload["limit"]
        try:
            payload["limit"] = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            raise InvalidRequestError(
                f"limit must be a whole number of rows; got {text[:40]!r}", code="INVALID_LIMIT", field="limit"
            ) from None
    if "local_only" in payload:
        text = payload["local_only"].lower()
        if text not in _BOOLEAN_WORDS:
            raise InvalidRequestError(
                f"local_only must be true or false; got {payload['local_only'][:40]!r}",
                code="INVALID_PAYLOAD",
                field="local_only",
            )
        payload["local_only"] = _BOOLEAN_WORDS[text]
    return payload


_BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
