"""Request payloads as the Python client sends them, built from Python arguments.

Dates, datetimes and enums become the strings the protocol reads; anything else
goes as given, for the server to validate (so a mistake gets the server's error,
naming the field).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from dataprovider.enums import DataPeriod, DataResolution

__all__ = ["query_payload"]


def _wire_time(value: object) -> object:
    """Dates as 'YYYY-MM-DD', datetimes as ISO-8601; anything else as given (the server validates)."""
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _wire_enum(value: object) -> object:
    return value.value if isinstance(value, DataResolution | DataPeriod) else value


def query_payload(
    resolution: DataResolution | str,
    period: DataPeriod | str,
    time_start: object,
    time_end: object,
    limit: int | None,
    local_only: bool,
    fmt: str,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The fields shared by ``get_data`` and ``get_batch_data`` payloads (None values left out).

    Examples
    --------
    >>> query_payload(DataResolution.DAY_01, "1y", dt.date(2015, 1, 1), None, None, True, "arrow")
    {'resolution': '1d', 'period': '1y', 'time_start': '2015-01-01', 'local_only': True, 'format': 'arrow'}
    """
    payload = {
        "resolution": _wire_enum(resolution),
        "period": _wire_enum(period),
        "time_start": _wire_time(time_start),
        "time_end": _wire_time(time_end),
        "limit": limit,
        "local_only": local_only,
        "format": fmt,
    }
    if request_id is not None:
        payload["request_id"] = request_id
    return {key: value for key, value in payload.items() if value is not None}
