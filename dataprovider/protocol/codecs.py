"""Frames on the wire, in one of two encodings, and back.

* ``arrow``: Arrow IPC stream bytes, split into chunks of at most
  :data:`~dataprovider.protocol.events.CHUNK_BYTES` so every binary Socket.IO
  attachment stays under the transport's message limit (the Python client's default);
* ``json``: ``{"format", "index_name", "timezone", "columns", "index", "data"}``
  with ISO-8601 timestamps, for any other client (one message, not chunked).

Nothing is ever pickled in either direction.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pyarrow as pa

from dataprovider.bars import Bars, frame_from_batches, frame_from_table
from dataprovider.frames import OHLCV_COLUMNS
from dataprovider.protocol.events import CHUNK_BYTES

# Room left in each message for its header, and for padding of its buffers to 8 bytes.
_MESSAGE_OVERHEAD = 4096


def encode_bars(bars: Bars, fmt: str) -> dict[str, Any]:
    """Bars as a payload part in format ``fmt`` ('arrow' or 'json').

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-02 09:30", "2024-01-02 09:31"], tz="America/New_York", name="Datetime")
    >>> frame = pd.DataFrame({"Open": [470.0, 470.5], "High": [471.0, 470.9], "Low": [469.8, 470.1],
    ...                       "Close": [470.5, 470.2], "Volume": [1200, 800]}, index=idx)
    >>> part = encode_bars(Bars.from_frame(frame), "arrow")
    >>> part["format"], len(part["chunks"])
    ('arrow', 1)
    >>> decode_frame(part).equals(frame)
    True
    >>> part = encode_bars(Bars.from_frame(frame), "json")
    >>> part["index"], part["data"][0]
    (['2024-01-02T09:30:00-05:00', '2024-01-02T09:31:00-05:00'], [470.0, 471.0, 469.8, 470.5, 1200])
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
    if table.get_total_buffer_size() <= room:
        # It fits in one batch: the buffers' total size bounds the data's, and costs nothing to get,
        # while ``nbytes`` of a slice (most replies) is computed buffer by buffer.
        rows_per_batch = max(1, table.num_rows)
    else:
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
