"""The REST API: a Flask blueprint over the same answers as the Socket.IO events.

GET  /api/health                 server status
GET  /api/instruments            the cached datasets
GET  /api/data/<ticker>?...      one ticker's bars (format=json|csv|arrow)
POST /api/batch                  several tickers (JSON body as for get_batch_data)
GET  /api/openapi.json           the OpenAPI document of all of the above

Errors are JSON ``{"error": {...}}`` with the protocol's codes and a fitting status,
for every request the server can read at all: a failure inside a handler is
INTERNAL, logged with its traceback, and carries the request's id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from dataprovider import __version__, protocol
from dataprovider.engine.service import DataService
from dataprovider.errors import (
    DataProviderError,
    InvalidRequestError,
    code_for_http_status,
    describe_value,
    http_status_for,
)
from server.answers import answer_batch, answer_data, internal_error
from server.http import params
from server.http.openapi import openapi_document

__all__ = ["make_api"]


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
        upstream = service.source.name if service.source is not None else None
        return jsonify(protocol.health_reply(__version__, service.store.count_datasets(), upstream))

    @api.get("/instruments")
    def instruments() -> Response:
        return jsonify(protocol.instruments_reply(service.store.list_datasets()))

    @api.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document())

    @api.get("/data/", defaults={"ticker": ""})  # answered INVALID_TICKER, not as an unknown path
    @api.get("/data/<path:ticker>")
    def data(ticker: str) -> Response:
        request_id = protocol.new_request_id()

        def work() -> Response:
            params.check_query_string(request.query_string)
            payload = {**params.payload_from_query_args(ticker, request.args), "request_id": request_id}
            data_request, result = answer_data(service, payload, protocol.REST_FORMATS)
            summary = protocol.result_summary(result)
            if data_request.format == "csv":
                return Response(result.frame.to_csv(), mimetype="text/csv", headers=_summary_header(summary))
            if data_request.format == "arrow":
                body = protocol.arrow_stream(result.bars.wire_table())
                return Response(body, mimetype=protocol.ARROW_MIME, headers=_summary_header(summary))
            return jsonify(protocol.data_reply(request_id, summary, result.bars, "json"))

        return _answering(request_id, work)

    @api.post("/batch")
    def batch() -> Response:
        if request.mimetype and not request.is_json:  # no Content-Type at all is read as JSON
            error = InvalidRequestError(
                f"the body must be JSON sent with Content-Type: application/json; got Content-Type "
                f"{describe_value(request.content_type)}",
                code="INVALID_PAYLOAD",
            )
            return error_response(error, status=415)
        payload = params.parse_json_body(request.get_data(cache=False))
        if isinstance(payload, dict) and "request_id" not in payload:
            payload = {**payload, "request_id": protocol.new_request_id()}
        return _answering(
            protocol.request_id_of(payload), lambda: jsonify(answer_batch(service, payload, formats=("json",)))
        )

    @api.errorhandler(DataProviderError)
    def on_provider_error(error: DataProviderError) -> Response:
        return error_response(error)

    return api


def register_error_handlers(app) -> None:
    """JSON answers for unknown paths, wrong methods and unexpected failures anywhere in the app."""

    @app.errorhandler(HTTPException)
    def on_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        details = {}
        if status in (404, 405):
            message = f"{error.name}: {request.method} {request.path}; /api/openapi.json lists the endpoints"
        elif status == 413:
            details = {"max_bytes": app.config["MAX_CONTENT_LENGTH"]}
            message = (
                f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes: "
                "send fewer tickers per batch"
            )
        else:
            message = f"{error.name}: {error.description}"
        return error_response(InvalidRequestError(message, code=code_for_http_status(status), details=details), status)

    @app.errorhandler(Exception)
    def on_unexpected(error: Exception) -> Response:
        return error_response(internal_error(None, error))


def _answering(request_id: str | None, work: Callable[[], Response]) -> Response:
    """``work()``, or the JSON error for its failure, carrying ``request_id``.

    A failure that is no DataProviderError is a bug: INTERNAL, with the
    traceback in the server log only.
    """
    try:
        return work()
    except HTTPException:
        raise  # answered by the app's handler (a body too large, ...)
    except DataProviderError as error:
        return error_response(error, request_id=request_id)
    except Exception as exc:
        return error_response(internal_error(request_id, exc), request_id=request_id)


def _summary_header(summary: dict[str, Any]) -> dict[str, str]:
    return {"X-Dataprovider-Summary": json.dumps(summary)}
