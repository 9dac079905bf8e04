"""Properties of request validation, over arbitrary and over valid generated input (hypothesis).

Whatever a client sends, validation either returns a request or raises
InvalidRequestError with a known code, a short message and, when set, the name
of a real field; valid requests always parse, and survive the trip through the
Python client's payload builder unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from dataprovider import protocol
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.errors import ERROR_CLASSES, InvalidRequestError, describe_value
from dataprovider.instruments import MAX_TICKER_LENGTH, TICKER_PATTERN, validate_ticker
from dataprovider.protocol.payloads import query_payload
from dataprovider.protocol.query import TIME_BOUND_PATTERN, TimeBound
from server.http import params

# Longest error message validation may write, whatever it is sent.
MESSAGE_BOUND = 600

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
anything = json_values | st.binary(max_size=20)
tickers = st.from_regex(f"\\A{TICKER_PATTERN}\\Z").filter(lambda t: len(t) <= MAX_TICKER_LENGTH)


def near_valid(field: str) -> st.SearchStrategy:
    """Values close to what ``field`` accepts, mixed with anything at all."""
    texts = {
        "ticker": tickers | st.text(max_size=40),
        "request_id": st.text(max_size=140),
        "resolution": st.sampled_from(DataResolution.values()) | st.text(max_size=5),
        "period": st.sampled_from(DataPeriod.values()) | st.text(max_size=5),
        "time_start": st.text(alphabet="0123456789-:TZ+ .", max_size=30),
        "time_end": st.text(alphabet="0123456789-:TZ+ .", max_size=30),
        "limit": st.integers(-5, protocol.MAX_LIMIT + 5) | st.floats(),
        "local_only": st.booleans(),
        "format": st.sampled_from(protocol.REST_FORMATS) | st.text(max_size=5),
        "tickers": st.lists(tickers | anything, max_size=5),
    }
    return texts[field] | anything


def payloads(fields: tuple[str, ...]) -> st.SearchStrategy:
    """Objects with any subset of ``fields``, each near-valid or arbitrary."""
    return st.fixed_dictionaries({}, optional={name: near_valid(name) for name in fields})


def assert_well_formed(error: InvalidRequestError, fields: tuple[str, ...], payload: object) -> None:
    assert error.code in ERROR_CLASSES and ERROR_CLASSES[error.code] is InvalidRequestError
    assert error.message and len(error.message) <= MESSAGE_BOUND
    if error.field is not None:
        unknown = [key for key in payload if key not in fields] if isinstance(payload, dict) else []
        assert error.field in fields or error.field in [key[:64] for key in unknown]
    json.dumps(error.to_payload())  # it can go on the wire


@given(anything)
def test_anything_at_all_is_a_request_or_an_invalid_request_error(payload):
    for parse, fields in (
        (protocol.parse_data_request, protocol.DATA_FIELDS),
        (protocol.parse_batch_request, protocol.BATCH_FIELDS),
    ):
        try:
            parse(payload)
        except InvalidRequestError as error:
            assert_well_formed(error, fields, payload)


@given(payloads(protocol.DATA_FIELDS) | st.dictionaries(st.text(max_size=80), anything, max_size=3))
def test_data_payload_errors_name_a_real_field(payload):
    try:
        request = protocol.parse_data_request(payload, protocol.REST_FORMATS)
    except InvalidRequestError as error:
        assert_well_formed(error, protocol.DATA_FIELDS, payload)
        assert error.field is not None  # an object always has a field at fault
    else:
        assert request.query.ticker == payload["ticker"].upper()


@given(payloads(protocol.BATCH_FIELDS))
def test_batch_payload_errors_name_a_real_field_and_bad_tickers_are_set_aside(payload):
    try:
        request = protocol.parse_batch_request(payload)
    except InvalidRequestError as error:
        assert_well_formed(error, protocol.BATCH_FIELDS, payload)
        assert error.field is not None
        return
    assert len(request.tickers) == len(set(request.tickers))  # each ticker once
    for key, error in request.invalid.items():
        assert (error.code, error.field, error.ticker) == ("INVALID_TICKER", "tickers[]", key)
    entries = payload["tickers"]
    assert len(request.tickers) + len(request.invalid) <= len(entries)
    assert set(request.tickers) == {t.upper() for t in entries if isinstance(t, str) and _is_ticker(t)}


def _is_ticker(text: str) -> bool:
    return len(text) <= MAX_TICKER_LENGTH and re.fullmatch(TICKER_PATTERN, text, re.ASCII) is not None


def _refused(field: str) -> st.SearchStrategy:
    """Values ``field`` must refuse: other types (null too, except where it means 'absent'), other strings."""

    def not_matching(pattern: str) -> st.SearchStrategy:
        return anything.filter(lambda v: v is not None and not (isinstance(v, str) and re.fullmatch(pattern, v, re.A)))

    def not_one_of(values) -> st.SearchStrategy:
        padded = st.tuples(st.sampled_from(values), st.sampled_from([" {}", "{} ", "{}\n", "{}\x00"]))
        return anything.filter(lambda value: value not in values) | padded.map(lambda pair: pair[1].format(pair[0]))

    return {
        "limit": st.booleans()
        | st.floats().filter(lambda x: not (math.isfinite(x) and x.is_integer()))
        | st.integers().filter(lambda n: not 1 <= n <= protocol.MAX_LIMIT)
        | st.floats(protocol.MAX_LIMIT + 1, 1e300)
        | st.text(max_size=8)
        | st.lists(scalars, max_size=2),
        "local_only": anything.filter(lambda value: not isinstance(value, bool)),
        "resolution": not_one_of(DataResolution.values()),
        "period": not_one_of(DataPeriod.values()),
        "format": not_one_of(protocol.FORMATS),
        "time_start": not_matching(TIME_BOUND_PATTERN),
        "request_id": not_matching(r"[\x21-\x7e]{1,128}"),
    }[field]


# Each field: the code it refuses a value with, and what its message must say to fix it.
REFUSALS = {
    "limit": ("INVALID_LIMIT", f"from 1 to {protocol.MAX_LIMIT}"),
    "local_only": ("INVALID_PAYLOAD", "true or false"),
    "resolution": ("INVALID_RESOLUTION", ", ".join(DataResolution.values())),
    "period": ("INVALID_PERIOD", ", ".join(DataPeriod.values())),
    "format": ("INVALID_FORMAT", ", ".join(protocol.FORMATS)),
    "time_start": ("INVALID_TIME_RANGE", "YYYY-MM-DD"),
    "request_id": ("INVALID_PAYLOAD", "visible ASCII"),
}


@pytest.mark.parametrize("field", list(REFUSALS))
@settings(max_examples=30)
@given(data=st.data())
def test_each_field_refuses_other_values_saying_what_to_send(field, data):
    value = data.draw(_refused(field))
    with pytest.raises(InvalidRequestError) as caught:
        protocol.parse_data_request({"ticker": "SPY", field: value})
    code, fix = REFUSALS[field]
    assert (caught.value.code, caught.value.field) == (code, field)
    assert fix in caught.value.message


# ------------------------------------------------------------------ valid requests round-trip
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
instants = st.datetimes(dt.datetime(1900, 1, 2), dt.datetime(2199, 12, 28), timezones=st.none() | offsets)
time_bounds = st.one_of(
    st.dates(dt.date(1900, 1, 1), dt.date(2199, 12, 28)).map(lambda d: TimeBound(pd.Timestamp(d), True)),
    instants.map(lambda t: TimeBound(pd.Timestamp(t), False)),
)


@st.composite
def valid_payloads(draw) -> dict:
    start, end = sorted(draw(st.lists(time_bounds, min_size=2, max_size=2)), key=lambda b: b.start_instant("UTC"))
    if (start.value.tzinfo is None) != (end.value.tzinfo is None):  # keep them in order in any timezone
        end = TimeBound(end.value + pd.Timedelta(days=2), end.date_only)
    payload = {
        "ticker": draw(tickers),
        "request_id": draw(st.from_regex(r"\A[\x21-\x7e]{1,128}\Z")),
        "resolution": draw(st.sampled_from(DataResolution.values())),
        "period": draw(st.sampled_from(DataPeriod.values())),
        "time_start": start.isoformat(),
        "time_end": end.isoformat(),
        "limit": draw(st.integers(1, protocol.MAX_LIMIT) | st.integers(1, 1000).map(float)),
        "local_only": draw(st.booleans()),
        "format": draw(st.sampled_from(protocol.FORMATS)),
    }
    return {key: value for key, value in payload.items() if key not in draw(st.sets(st.sampled_from(list(payload))))}


@settings(max_examples=30)
@given(valid_payloads())
def test_valid_requests_parse_and_round_trip_through_the_client(payload):
    payload = {"ticker": "SPY", **payload}
    request = protocol.parse_data_request(payload)
    query = request.query
    assert query.ticker == payload["ticker"].upper()
    assert query.resolution.value == payload.get("resolution", "1d")
    assert query.limit == (int(payload["limit"]) if "limit" in payload else None)
    if "time_start" in payload:
        assert query.time_start.value == pd.Timestamp(payload["time_start"])
    wire = query_payload(
        query.resolution,
        query.period,
        _python_time(query.time_start),
        _python_time(query.time_end),
        query.limit,
        query.local_only,
        request.format,
        request.request_id,
    )
    again = protocol.parse_data_request({"ticker": query.ticker, **json.loads(json.dumps(wire))})
    assert again == request


def _python_time(bound: TimeBound | None) -> object:
    """What a notebook would pass: a date for a whole day, a Timestamp for an instant."""
    if bound is None:
        return None
    return bound.value.date() if bound.date_only else bound.value


@settings(max_examples=20)
@given(valid_payloads(), st.lists(tickers, min_size=1, max_size=10))
def test_valid_batches_parse_with_each_ticker_once(payload, symbols):
    payload.pop("ticker", None)
    request = protocol.parse_batch_request({**payload, "tickers": symbols + symbols[::-1]})
    assert request.tickers == list(dict.fromkeys(t.upper() for t in symbols)) and not request.invalid


# ------------------------------------------------------------------ tickers
FORBIDDEN = ["/", "\\", "..", "\x00", " ", "\t", "\n", "é", "\u200b", "\uff33"]


@given(st.text(max_size=40))
def test_accepted_tickers_are_short_upper_case_ascii_symbols(text):
    try:
        ticker = validate_ticker(text)
    except InvalidRequestError as error:
        assert error.code == "INVALID_TICKER" and error.field == "ticker"
        return
    assert ticker == text.upper() and ticker.isascii() and len(ticker) <= MAX_TICKER_LENGTH
    assert not any(bad in ticker for bad in FORBIDDEN)


@given(st.text(max_size=10) | tickers, st.sampled_from(FORBIDDEN), st.text(max_size=10) | tickers)
def test_tickers_with_path_or_space_or_non_ascii_characters_are_refused(before, bad, after):
    with pytest.raises(InvalidRequestError) as caught:
        validate_ticker(before + bad + after)
    assert caught.value.code == "INVALID_TICKER"


@given(tickers)
def test_every_symbol_of_the_documented_pattern_is_accepted(ticker):
    assert validate_ticker(ticker) == ticker.upper()


# ------------------------------------------------------------------ time bounds, REST text, raw JSON
@given(st.text(max_size=40) | st.text(alphabet="0123456789-:TZ+ .", max_size=40))
def test_time_bounds_parse_or_raise_value_error(text):
    try:
        bound = TimeBound.parse(text)
    except ValueError:
        return
    assert bound.value == pd.Timestamp(text) and bound.date_only == (len(text) == 10)


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=6))
def test_query_parameters_become_a_payload_or_an_invalid_request_error(pairs):
    args = MultiDict(pairs)
    try:
        payload = params.payload_from_query_args("SPY", args)
        protocol.parse_data_request(payload, protocol.REST_FORMATS)
    except InvalidRequestError as error:
        assert_well_formed(error, (*protocol.DATA_FIELDS, "start", "end"), dict(pairs))


@given(st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
def test_raw_query_strings_and_bodies_never_fail_otherwise(raw):
    for check in (params.check_query_string, params.parse_json_body):
        try:
            check(raw)
        except InvalidRequestError as error:
            assert error.code == "INVALID_PAYLOAD" and len(error.message) <= MESSAGE_BOUND


@given(st.integers(-(10**300), 10**300))
def test_json_integers_are_exact_up_to_100_digits_and_floats_beyond(number):
    value = protocol.read_json_int(str(number))
    assert value == number if len(str(number)) <= 100 else value == float(number)


@given(anything)
def test_described_values_are_short(value):
    assert len(describe_value(value)) <= 80
