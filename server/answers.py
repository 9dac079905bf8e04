"""Requests answered the same way for REST and Socket.IO: validate, ask the service, build the reply."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from dataprovider import protocol
from dataprovider.bars import Bars
from dataprovider.engine.service import BarsResult, DataService, StatusCallback
from dataprovider.errors import DataProviderError, InternalServerError, RequestCancelledError
from dataprovider.protocol import DataRequest

__all__ = ["answer_batch", "answer_data", "internal_error", "status_reporter"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], None]
#: Receives each ``data_status`` payload (request_id, status and details).
StatusPayloadCallback = Callable[[dict[str, Any]], None]


def answer_data(
    service: DataService, payload: object, formats: tuple[str, ...] = protocol.FORMATS
) -> tuple[DataRequest, BarsResult]:
    """Validate a ``get_data`` payload and answer it.

    Raises
    ------
    DataProviderError
        For invalid requests and every failure the service reports.
    """
    request = protocol.parse_data_request(payload, formats)
    return request, service.get_bars(request.query)


def status_reporter(request_id: str, send: StatusPayloadCallback) -> StatusCallback:
    """The service's status callback for one request, sending ``data_status`` payloads through ``send``."""

    def status(state: str, detail: dict[str, Any]) -> None:
        send(protocol.status_reply(request_id, state, detail))

    return status


def answer_batch(
    service: DataService,
    payload: object,
    on_progress: ProgressCallback | None = None,
    cancelled: threading.Event | None = None,
    formats: tuple[str, ...] = protocol.FORMATS,
) -> dict[str, Any]:
    """Validate a ``get_batch_data`` payload, answer every ticker, and return the ``batch_response`` payload.

    ``on_progress`` receives a ``batch_progress`` payload as each ticker finishes
    (invalid tickers first), with a counter that rises by one each time.

    Raises
    ------
    DataProviderError
        If the batch as a whole is malformed (per-ticker failures are in the reply).
    """
    request = protocol.parse_batch_request(payload, formats)
    started = time.monotonic()
    total = len(request.tickers) + len(request.invalid)
    results: dict[str, tuple[dict[str, Any], Bars]] = {}
    errors: dict[str, DataProviderError] = {}
    guard = threading.Lock()
    unsent: list[dict[str, Any]] = []
    last_sent = [0.0]

    def record(ticker: str, outcome: BarsResult | DataProviderError) -> None:
        summary = protocol.result_summary(outcome) if isinstance(outcome, BarsResult) else None
        with guard:
            if summary is None:
                errors[ticker] = outcome
            else:
                results[ticker] = (summary, outcome.bars)
            index = len(results) + len(errors)
            unsent.append(protocol.progress_item(ticker, index, total, summary or outcome))
            now = time.monotonic()
            if on_progress is not None and (index == total or now - last_sent[0] >= protocol.PROGRESS_INTERVAL):
                on_progress(protocol.progress_reply(request.request_id, list(unsent)))
                unsent.clear()
                last_sent[0] = now

    for ticker, error in request.invalid.items():
        record(ticker, error)
    service.get_batch(request.query, request.tickers, on_item=record, cancelled=cancelled)
    if len(results) + len(errors) < total:  # only a cancel leaves tickers unanswered
        raise RequestCancelledError(
            f"batch {request.request_id} was cancelled after {len(results) + len(errors)} of {total} tickers",
            details={"done": len(results) + len(errors), "total": total},
        )
    ordered = {ticker: results[ticker] for ticker in request.tickers if ticker in results}
    index_name = request.query.resolution.index_name
    return protocol.batch_reply(
        request.request_id, ordered, errors, time.monotonic() - started, request.format, index_name
    )


def internal_error(request_id: str | None, exc: BaseException) -> InternalServerError:
    """Log an unexpected failure with its traceback (server side only) and return the INTERNAL error to send."""
    logger.error("request %s failed unexpectedly", request_id, exc_info=exc)
    return InternalServerError(
        f"the server failed unexpectedly while answering request {request_id}; its log has the details",
        details={"request_id": request_id},
    )
