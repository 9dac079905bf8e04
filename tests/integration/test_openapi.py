"""The OpenAPI document of the REST API: valid, served, in step with the protocol, and true of a live server.

schemathesis generates requests for every operation from the document, valid
ones and invalid ones, and checks each answer: never a 5xx, and a status,
content type, headers and body the document declares. The server is offline
(no source), so nothing reaches an upstream.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dataprovider import protocol
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import ERROR_CLASSES
from server.http.openapi import openapi_document

# Examples per operation and generation mode: enough to reach every parameter, quick enough for CI.
EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_the_document_is_valid_openapi():
    schema = schemathesis.openapi.from_dict(openapi_document())
    schema.validate()  # raises for a document that breaks the OpenAPI 3.1 meta-schema
    operations = {f"{op.method.upper()} {op.path}" for op in (result.ok() for result in schema.get_all_operations())}
    assert operations == {
        "GET /api/health",
        "GET /api/instruments",
        "GET /api/data/{ticker}",
        "POST /api/batch",
        "GET /api/openapi.json",
    }


def test_the_document_uses_the_protocol_constants():
    document = openapi_document()
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/api/data/{ticker}"]["get"]["parameters"]}
    assert parameters["resolution"]["enum"] == DataResolution.values()
    assert parameters["period"]["enum"] == DataPeriod.values()
    assert parameters["format"]["enum"] == list(protocol.REST_FORMATS)
    assert parameters["limit"]["maximum"] == protocol.MAX_LIMIT
    schemas = document["components"]["schemas"]
    assert schemas["BatchRequest"]["properties"]["tickers"]["maxItems"] == protocol.MAX_BATCH_TICKERS
    assert set(schemas["BatchRequest"]["properties"]) == set(protocol.BATCH_FIELDS)
    assert schemas["ErrorPayload"]["properties"]["code"]["enum"] == sorted(ERROR_CLASSES)


def test_the_document_gives_the_default_of_local_only_the_server_applies():
    document = openapi_document()
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/api/data/{ticker}"]["get"]["parameters"]}
    batch = document["components"]["schemas"]["BatchRequest"]["properties"]
    applied = protocol.parse_data_request({"ticker": "SPY"}).query.local_only
    assert applied is protocol.parse_batch_request({"tickers": ["SPY"]}).query.local_only is True
    assert parameters["local_only"]["default"] is batch["local_only"]["default"] is applied


def test_the_server_serves_the_document(live_server):
    response = requests.get(f"{live_server().url}/api/openapi.json", timeout=10)
    assert response.headers["Content-Type"] == "application/json" and response.json() == openapi_document()


# Loaded from the document itself at collection (schemathesis' fixture-based loader does not work with
# pytest 9.2); each operation's test then calls one live server.
document_schema = schemathesis.openapi.from_dict(openapi_document())
document_schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES, database="none"
)


@pytest.fixture
def api_url(live_server) -> str:
    return live_server().url


@pytest.mark.timeout(60)
@document_schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one server for all examples: intended
def test_every_operation_answers_as_documented(case, api_url):
    case.call_and_validate(base_url=api_url, checks=CHECKS, timeout=10)
