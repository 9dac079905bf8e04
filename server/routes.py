"""The REST API: a Flask blueprint over the same answers as the Socket.IO events.

GET  /api/health                 server status
GET  /api/instruments            the cached datasets
GET  /api/data/<ticker>?...      one ticker's bars (format=json|csv|arrow)
POST /api/batch                  several tickers (JSON body as for get_batch_data)

Errors are JSON ``{"error": {...}}`` with the protocol's codes and a fitting status.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from dataprovider import __version__, protocol
from dataprovider.errors import DataProviderError, InvalidRequestError, http_status_for
from dataprovider.service import DataService

from .answers import answer_batch, answer_data, internal_error

__all__ = ["make_api"]

ARROW_MIME = "application/vnd.apache.arrow.stream"


def error_response(error: DataProviderError, status: int | None = None, request_id: str | None = None) -> Response:
    """A JSON error body with the protocol's error payload."""
    response = jsonify({"error": protocol.error_reply(request_id, error)})
    response.status_code = status or http_status_for(error.code)
    return response


def make_api(service: DataService) -> Blueprint:
    """The /api blueprint answering from ``service``."""
    api = Blueprint("api", __name__, url_prefix="/api")

    @api.get("/health")
    def health() -> Response:
        return jsonify(
            {
                "status": "ok",
                "server_version": __version__,
                "protocol_version": protocol.PROTOCOL_VERSION,
                "cached_instruments": service.store.count_datasets(),
                "upstream": service.source.name if service.source is not None else None,
            }
        )

    @api.get("/instruments")
    def instruments() -> Response:
        return jsonify({"instruments": service.instruments()})

    @api.get("/data/<path:ticker>")
    def data(ticker: str) -> Response:
        payload = protocol.payload_from_query_args(ticker, request.args)
        data_request, result = answer_data(service, payload, protocol.REST_FORMATS)
        summary = result.summary()
        if data_request.format == "csv":
            return Response(result.frame.to_csv(), mimetype="text/csv", headers=_summary_header(summary))
        if data_request.format == "arrow":
            body = protocol.arrow_stream(result.bars.wire_table())
            return Response(body, mimetype=ARROW_MIME, headers=_summary_header(summary))
        return jsonify(protocol.data_reply(data_request.request_id, summary, result.bars, "json"))

    @api.post("/batch")
    def batch() -> Response:
        payload = request.get_json(silent=True)
        if payload is None:
            raise InvalidRequestError(
                'the body must be a JSON object such as {"tickers": ["SPY", "AAPL"], "resolution": "1d"} '
                "sent with Content-Type: application/json",
                code="INVALID_PAYLOAD",
            )
        try:
            return jsonify(answer_batch(service, payload, formats=("json",)))
        except DataProviderError as error:
            return error_response(error, request_id=protocol.request_id_of(payload))

    @api.errorhandler(DataProviderError)
    def on_provider_error(error: DataProviderError) -> Response:
        return error_response(error)

    return api


def register_error_handlers(app) -> None:
    """JSON answers for unknown paths, wrong methods and unexpected failures anywhere in the app."""

    @app.errorhandler(HTTPException)
    def on_http_error(error: HTTPException) -> Response:
        code = {404: "UNKNOWN_ENDPOINT", 405: "METHOD_NOT_ALLOWED"}.get(error.code, "INVALID_PAYLOAD")
        message = f"{error.name}: {request.method} {request.path}; docs/PROTOCOL.md lists the endpoints"
        if error.code not in (404, 405):
            message = f"{error.name}: {error.description}"
        return error_response(InvalidRequestError(message, code=code), status=error.code or 500)

    @app.errorhandler(Exception)
    def on_unexpected(error: Exception) -> Response:
        return error_response(internal_error(None, error))


def _summary_header(summary: dict[str, Any]) -> dict[str, str]:
    return {"X-Dataprovider-Summary": json.dumps(summary)}
