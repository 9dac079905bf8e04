"""The OpenAPI 3.1 document of the REST API, served at ``GET /api/openapi.json``.

Built from the protocol's own constants (resolutions, periods, formats, limits,
patterns, error codes and their HTTP statuses), so it cannot drift from what
the server accepts. docs/PROTOCOL.md describes the same API in prose.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Any

from dataprovider import __version__, protocol
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import ERROR_CLASSES, code_for_http_status, http_status_for
from dataprovider.instruments import MAX_TICKER_LENGTH, TICKER_PATTERN
from dataprovider.protocol.query import TIME_BOUND_PATTERN
from server.runner import MAX_HEADERS, MAX_LINE_BYTES

__all__ = ["openapi_document"]

_REF = "#/components/schemas/"
_NULLABLE_STRING = {"type": ["string", "null"]}
_TICKER = {"type": "string", "minLength": 1, "maxLength": MAX_TICKER_LENGTH, "pattern": f"^{TICKER_PATTERN}$"}
_TIME_BOUND = {"type": "string", "pattern": f"^{TIME_BOUND_PATTERN}$", "examples": ["2015-01-02", "2015-01-02T14:30Z"]}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": protocol.MAX_LIMIT}
# What the statuses the web layer answers by itself mean.
_STATUS_NOTES = {
    401: "The server requires a token (see docs/SECURITY.md) and none, or a wrong one, was sent.",
    413: "The request body is too large.",
    414: "The URL is too long.",
    415: "The body is not sent as application/json.",
    431: "A header line is too long, or there are too many headers.",
}
# Statuses any request may get before it reaches its handler.
_TRANSPORT_STATUSES = (401, 414, 431)
# The statuses a failure of the service can take, whatever the request.
_SERVICE_STATUSES = (500, 502, 503, 504, 507)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _error_responses(statuses: tuple[int, ...]) -> dict[str, Any]:
    """Each status's error response, naming the codes it carries."""
    responses = {}
    for status in sorted(statuses):
        codes = [code for code in sorted(ERROR_CLASSES) if http_status_for(code) == status]
        codes = codes or [code_for_http_status(status)]
        note = _STATUS_NOTES.get(status) or f"{HTTPStatus(status).phrase}."
        responses[str(status)] = {
            "description": f"{note} Error codes: {', '.join(codes)}.",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return responses


def _schemas() -> dict[str, Any]:
    summary_properties = {
        "ticker": {"type": "string"},
        "resolution": {"enum": DataResolution.values()},
        "rows": {"type": "integer", "minimum": 0},
        "start_date": _NULLABLE_STRING,
        "end_date": _NULLABLE_STRING,
        "timezone": {"type": "string"},
        "source": {"type": "string"},
        "stale": {"type": "boolean"},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "last_fetched": _NULLABLE_STRING,
    }
    return {
        "ErrorPayload": {
            "type": "object",
            "required": ["code", "message", "field", "ticker", "details"],
            "properties": {
                "request_id": _NULLABLE_STRING,
                "code": {"enum": sorted(ERROR_CLASSES)},
                "message": {"type": "string", "minLength": 1},
                "field": _NULLABLE_STRING,
                "ticker": _NULLABLE_STRING,
                "details": {"type": "object"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"allOf": [_ref("ErrorPayload"), {"required": ["request_id"]}]}},
        },
        "Health": {
            "type": "object",
            "required": ["status", "server_version", "protocol_version", "cached_instruments", "upstream"],
            "properties": {
                "status": {"const": "ok"},
                "server_version": {"type": "string"},
                "protocol_version": {"const": protocol.PROTOCOL_VERSION},
                "cached_instruments": {"type": "integer", "minimum": 0},
                "upstream": _NULLABLE_STRING,
            },
        },
        "Instrument": {
            "type": "object",
            "required": ["ticker", "resolution", "rows", "first", "last", "timezone", "source", "last_fetched"],
            "properties": {
                "ticker": {"type": "string"},
                "resolution": {"enum": DataResolution.values()},
                "rows": {"type": "integer", "minimum": 0},
                "first": _NULLABLE_STRING,
                "last": _NULLABLE_STRING,
                "timezone": {"type": "string"},
                "source": {"type": "string"},
                "last_fetched": _NULLABLE_STRING,
            },
        },
        "Summary": {"type": "object", "required": list(summary_properties), "properties": summary_properties},
        "JsonFrame": {
            "type": "object",
            "required": ["format", "index_name", "timezone", "columns", "index", "data"],
            "properties": {
                "format": {"const": "json"},
                "index_name": {"enum": ["Date", "Datetime"]},
                "timezone": _NULLABLE_STRING,
                "columns": {"type": "array", "items": {"type": "string"}},
                "index": {"type": "array", "items": {"type": "string"}},
                "data": {"type": "array", "items": {"type": "array", "items": {"type": ["number", "null"]}}},
            },
        },
        "DataResult": {
            "allOf": [
                _ref("Summary"),
                {"type": "object", "required": ["data"], "properties": {"data": _ref("JsonFrame")}},
            ]
        },
        "DataResponse": {
            "allOf": [
                _ref("DataResult"),
                {"type": "object", "required": ["request_id"], "properties": {"request_id": {"type": "string"}}},
            ]
        },
        "BatchRequest": {
            "type": "object",
            "required": ["tickers"],
            "additionalProperties": False,
            "properties": {
                "tickers": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": protocol.MAX_BATCH_TICKERS,
                    "items": _TICKER,
                    "description": "Invalid entries are answered per ticker in `errors`; duplicates once.",
                },
                "request_id": {
                    "type": "string",
                    "pattern": f"^[\\x21-\\x7e]{{1,{protocol.MAX_REQUEST_ID_LENGTH}}}$",
                },
                "resolution": {"enum": DataResolution.values(), "default": "1d"},
                "period": {"enum": DataPeriod.values(), "default": "1y"},
                "time_start": _nullable(_TIME_BOUND),
                "time_end": _nullable(_TIME_BOUND),
                "limit": _nullable(_LIMIT),
                "local_only": {
                    "type": "boolean",
                    "default": True,
                    "description": "Answer from the cache only; false downloads what is missing.",
                },
                "format": {"enum": ["json"], "default": "json"},
            },
        },
        "BatchResponse": {
            "type": "object",
            "required": ["request_id", "total", "succeeded", "failed", "elapsed", "errors", "results"],
            "properties": {
                "request_id": {"type": "string"},
                "total": {"type": "integer", "minimum": 0},
                "succeeded": {"type": "integer", "minimum": 0},
                "failed": {"type": "integer", "minimum": 0},
                "elapsed": {"type": "number", "minimum": 0},
                "errors": {"type": "object", "additionalProperties": _ref("ErrorPayload")},
                "results": {"type": "object", "additionalProperties": _ref("DataResult")},
            },
        },
    }


def _data_parameters() -> list[dict[str, Any]]:
    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    return [
        {
            "name": "ticker",
            "in": "path",
            "required": True,
            "schema": _TICKER,
            "description": "A Yahoo Finance symbol (any case; answered upper-cased). Encode '^' as %5E.",
        },
        query("resolution", {"enum": DataResolution.values(), "default": "1d"}, "Bar width."),
        query("period", {"enum": DataPeriod.values(), "default": "1y"}, "Look-back; ignored with a start."),
        query("start", _TIME_BOUND, "Inclusive start; same as time_start (give one of them)."),
        query("time_start", _TIME_BOUND, "Inclusive start."),
        query("end", _TIME_BOUND, "Inclusive end; same as time_end (give one of them)."),
        query("time_end", _TIME_BOUND, "Inclusive end (default: the newest bar)."),
        query("limit", _LIMIT, "Keep the last N rows of the window."),
        query(
            "local_only",
            {"type": "boolean", "default": True},
            "Answer from the cache only (also 1/0, yes/no, any case); false downloads what is missing.",
        ),
        query("format", {"enum": list(protocol.REST_FORMATS), "default": "json"}, "Encoding of the bars."),
    ]


def _summary_header() -> dict[str, Any]:
    return {
        "X-Dataprovider-Summary": {
            "description": "The result's summary as JSON (the Summary schema).",
            "schema": {"type": "string"},
        }
    }


def _paths() -> dict[str, Any]:
    common = (*_TRANSPORT_STATUSES, 500)
    data_errors = (400, 404, *_TRANSPORT_STATUSES, *_SERVICE_STATUSES)
    batch_errors = (400, 413, 415, *_TRANSPORT_STATUSES, *_SERVICE_STATUSES)

    def json_ok(description: str, schema: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}

    return {
        "/api/health": {
            "get": {
                "operationId": "health",
                "summary": "Server status",
                "responses": {"200": json_ok("The server is up.", "Health"), **_error_responses(common)},
            }
        },
        "/api/instruments": {
            "get": {
                "operationId": "instruments",
                "summary": "The cached datasets",
                "responses": {
                    "200": {
                        "description": "One entry per cached ticker and resolution, sorted.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["instruments"],
                                    "properties": {"instruments": {"type": "array", "items": _ref("Instrument")}},
                                }
                            }
                        },
                    },
                    **_error_responses(common),
                },
            }
        },
        "/api/data/{ticker}": {
            "get": {
                "operationId": "getData",
                "summary": "One ticker's bars",
                "parameters": _data_parameters(),
                "responses": {
                    "200": {
                        "description": "The bars, in the requested format.",
                        "headers": _summary_header(),
                        "content": {
                            "application/json": {"schema": _ref("DataResponse")},
                            "text/csv": {"schema": {"type": "string"}},
                            protocol.ARROW_MIME: {"schema": {"type": "string"}},
                        },
                    },
                    **_error_responses(data_errors),
                },
            }
        },
        "/api/batch": {
            "post": {
                "operationId": "getBatchData",
                "summary": "Several tickers at once",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("BatchRequest")}},
                },
                "responses": {
                    "200": json_ok(
                        "Every ticker's result or error (per-ticker failures are not HTTP errors).", "BatchResponse"
                    ),
                    **_error_responses(batch_errors),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_error_responses(common),
                },
            }
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the REST API (built once; treat it as read-only).

    Examples
    --------
    >>> sorted(openapi_document()["paths"])
    ['/api/batch', '/api/data/{ticker}', '/api/health', '/api/instruments', '/api/openapi.json']
    """
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dataprovider REST API",
            "version": __version__,
            "description": (
                "OHLCV price bars from a local Parquet cache. docs/PROTOCOL.md describes this API and the "
                f"Socket.IO protocol (version {protocol.PROTOCOL_VERSION}) in prose. Request bodies are at most "
                f"{protocol.MAX_MESSAGE_BYTES} bytes; request and header lines at most {MAX_LINE_BYTES} bytes, "
                f"and a request has at most {MAX_HEADERS} headers."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer"}},
        },
        # No token on a loopback server; a server started with a token wants it on every call.
        "security": [{}, {"bearerToken": []}],
    }
