"""REST request bodies and query strings, read into the payloads the protocol validates."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from dataprovider.errors import InvalidRequestError, describe_value
from dataprovider.protocol.events import FIELD_NAME_CHARS, MAX_LIMIT, QUERY_FIELDS
from dataprovider.protocol.requests import read_json_int


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
        field = urllib.parse.unquote(name.decode("latin-1"), errors="replace")[:FIELD_NAME_CHARS]
        raise InvalidRequestError(f"parameter {describe_value(field)} {problem}", code="INVALID_PAYLOAD", field=field)


def payload_from_query_args(ticker: str, args: Any) -> dict[str, Any]:
    """Turn REST query parameters (a werkzeug MultiDict) into a ``get_data`` payload.

    ``start``/``end`` are accepted for ``time_start``/``time_end``; ``limit`` is
    read like a JSON number and ``local_only`` from a word (true/1/yes,
    false/0/no, any case). Each parameter may be given once. Without
    ``local_only`` the request reads the cache alone (the default, True);
    ``local_only=false`` downloads what the cache is missing.

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
    allowed = sorted({*_QUERY_ALIASES, *QUERY_FIELDS} - {"request_id"})
    payload: dict[str, Any] = {"ticker": ticker}
    for name in args:
        field = name[:FIELD_NAME_CHARS]
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
