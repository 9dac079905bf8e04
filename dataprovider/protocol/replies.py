"""Replies: the payloads the server sends, built from what the engine computed.

The engine hands over results (bars and facts about them); only this module
decides how they look on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dataprovider.bars import Bars
from dataprovider.enums import DataResolution
from dataprovider.errors import DataProviderError
from dataprovider.frames import empty_frame
from dataprovider.protocol.codecs import arrow_messages, encode_bars
from dataprovider.protocol.events import PROTOCOL_VERSION


def bar_payload(time: pd.Timestamp, row: Any) -> dict[str, Any]:
    """One bar on the wire: ``time`` (ISO-8601, exchange timezone), then OHLCV (float prices, volume as stored).

    Examples
    --------
    >>> idx = pd.DatetimeIndex(["2024-01-02 09:30"], tz="America/New_York", name="Datetime")
    >>> frame = pd.DataFrame({"Open": [470.0], "High": [471.0], "Low": [469.8], "Close": [470.5], "Volume": [1200]},
    ...                      index=idx)
    >>> row = next(frame.itertuples())
    >>> bar_payload(row.Index, row)
    {'time': '2024-01-02T09:30:00-05:00', 'open': 470.0, 'high': 471.0, 'low': 469.8, 'close': 470.5, 'volume': 1200}
    """
    volume = row.Volume
    return {
        "time": time.isoformat(),
        "open": float(row.Open),
        "high": float(row.High),
        "low": float(row.Low),
        "close": float(row.Close),
        "volume": volume.item() if hasattr(volume, "item") else volume,
    }


def error_reply(request_id: str | None, error: DataProviderError) -> dict[str, Any]:
    """The payload of a ``data_error`` / ``batch_error`` reply (and of REST error bodies).

    Examples
    --------
    >>> from dataprovider.errors import NotCachedError
    >>> error_reply("r1", NotCachedError("SPY 1m is not cached", ticker="SPY"))  # doctest: +NORMALIZE_WHITESPACE
    {'request_id': 'r1', 'code': 'NOT_CACHED', 'message': 'SPY 1m is not cached', 'field': None,
     'ticker': 'SPY', 'details': {}}
    """
    return {"request_id": request_id, **error.to_payload()}


def status_reply(request_id: str, status: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The payload of a ``data_status`` event: what the engine is doing for a request ('downloading', ...)."""
    return {"request_id": request_id, "status": status, **detail}


def data_reply(request_id: str, summary: dict[str, Any], bars: Bars, fmt: str) -> dict[str, Any]:
    """The payload of a ``data_response``: the result's summary plus the encoded bars."""
    return {"request_id": request_id, **summary, "data": encode_bars(bars, fmt)}


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


def result_summary(result: Any) -> dict[str, Any]:
    """JSON-safe facts about one result (no rows): what replies and the client's callbacks carry.

    ``result`` is the engine's answer to one query (a ``BarsResult``): its
    ticker, resolution, bars, timezone, source, stale flag, warnings and
    last_fetched time.
    """
    start_date, end_date = result.bars.span_iso()
    return {
        "ticker": result.ticker,
        "resolution": result.resolution.value,
        "rows": len(result.bars),
        "start_date": start_date,
        "end_date": end_date,
        "timezone": result.timezone,
        "source": result.source,
        "stale": result.stale,
        "warnings": list(result.warnings),
        "last_fetched": _iso(result.last_fetched),
    }


def instruments_reply(datasets: Iterable[Any]) -> dict[str, Any]:
    """The body of ``GET /api/instruments``: one JSON-safe row per cached dataset.

    Each of ``datasets`` is the store's description of one dataset (a
    ``DatasetInfo``): ticker, resolution, rows, first and last bar, and its
    metadata (timezone, source, last_fetched).
    """
    return {
        "instruments": [
            {
                "ticker": info.ticker,
                "resolution": info.resolution.value,
                "rows": info.rows,
                "first": _iso(info.first),
                "last": _iso(info.last),
                "timezone": info.meta.timezone,
                "source": info.meta.source,
                "last_fetched": _iso(info.meta.last_fetched),
            }
            for info in datasets
        ]
    }


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None else stamp.isoformat()


# ----------------------------------------------------------- status and live
def connection_reply(server_version: str, cached_instruments: int) -> dict[str, Any]:
    """The payload of ``connection_response``: the server's version, the protocol's, and the cache's size."""
    return {
        "status": "connected",
        "server_version": server_version,
        "protocol_version": PROTOCOL_VERSION,
        "cached_instruments": cached_instruments,
    }


def health_reply(server_version: str, cached_instruments: int, upstream: str | None) -> dict[str, Any]:
    """The body of ``GET /api/health``: the connection's facts, plus the source's name (None: offline)."""
    return {**connection_reply(server_version, cached_instruments), "status": "ok", "upstream": upstream}


def subscribed_reply(
    request_id: str, subscription_id: str, ticker: str, resolution: DataResolution, seq: int
) -> dict[str, Any]:
    """The payload of ``subscribed``: the subscription's id and the seq of the last update sent so far."""
    return {
        "request_id": request_id,
        "subscription_id": subscription_id,
        "ticker": ticker,
        "resolution": resolution.value,
        "seq": seq,
    }


def unsubscribed_reply(request_id: str | None, subscription_id: str) -> dict[str, Any]:
    """The payload of ``unsubscribed``."""
    return {"request_id": request_id, "subscription_id": subscription_id}


def bar_update_reply(
    subscription_id: str,
    ticker: str,
    resolution: DataResolution,
    time: pd.Timestamp,
    bar: dict[str, Any],
    *,
    is_final: bool,
    seq: int,
) -> dict[str, Any]:
    """The payload of ``bar_update``: one bar (see :func:`bar_payload`), whether it is final, and its seq."""
    return {
        "subscription_id": subscription_id,
        "ticker": ticker,
        "resolution": resolution.value,
        "timezone": str(time.tz),
        "bar": bar,
        "is_final": is_final,
        "seq": seq,
    }


def subscription_error_reply(subscription_id: str, error: DataProviderError, *, ended: bool) -> dict[str, Any]:
    """The payload of ``subscription_error``: what failed, and whether the subscription ``ended`` because of it."""
    payload = {**error_reply(None, error), "subscription_id": subscription_id}
    if ended:
        payload["ended"] = True
    return payload
