"""Client-side reply handling: progress released in order whatever order messages arrive in."""

from __future__ import annotations

import datetime as dt

from dataprovider.client.batches import ProgressOrderer
from dataprovider.enums import DataPeriod, DataResolution
from dataprovider.protocol.payloads import query_payload


def progress(ticker: str, index: int, total: int = 4) -> dict:
    return {
        "request_id": "r",
        "ticker": ticker,
        "index": index,
        "total": total,
        "progress": f"{index}/{total}",
        "status": "ok",
        "rows": 10,
        "error": None,
    }


def test_progress_is_released_in_index_order():
    seen = []
    orderer = ProgressOrderer(seen.append)
    for index, ticker in [(2, "B"), (3, "C"), (1, "A")]:
        orderer.add(progress(ticker, index))
    assert [p["index"] for p in seen] == [1, 2, 3]
    assert all("request_id" not in p for p in seen)


def test_finish_reports_tickers_whose_progress_never_arrived():
    seen = []
    orderer = ProgressOrderer(seen.append)
    orderer.add(progress("A", 1))
    orderer.add(progress("C", 3))  # 2 (B) is lost: handled after the final reply
    reply = {
        "total": 4,
        "results": {"A": {"rows": 10}, "B": {"rows": 7}, "C": {"rows": 10}},
        "errors": {"D": {"code": "NOT_CACHED", "message": "m"}},
    }
    orderer.finish(reply, ["A", "B", "C", "D"])
    assert [(p["ticker"], p["index"], p["status"]) for p in seen] == [
        ("A", 1, "ok"),
        ("C", 2, "ok"),
        ("B", 3, "ok"),
        ("D", 4, "error"),
    ]
    assert seen[2]["rows"] == 7 and seen[3]["error"]["code"] == "NOT_CACHED"


def test_query_payload_speaks_the_wire_format():
    payload = query_payload(
        DataResolution.HOUR_01,
        DataPeriod.MONTH_01,
        dt.date(2020, 1, 1),
        dt.datetime(2020, 1, 31, 16, 0),
        100,
        False,
        "arrow",
    )
    assert payload == {
        "resolution": "1h",
        "period": "1mo",
        "time_start": "2020-01-01",
        "time_end": "2020-01-31T16:00:00",
        "limit": 100,
        "local_only": False,
        "format": "arrow",
    }


def test_errors_without_callback_reach_stderr_when_logging_is_not_configured():
    import subprocess
    import sys

    code = (
        "from dataprovider.errors import NotCachedError; from dataprovider.client.batches import report_error;"
        "report_error(NotCachedError('SPY 1m is not in the cache', ticker='SPY'), None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stderr.strip() == "WARNING dataprovider: SPY: SPY 1m is not in the cache (NOT_CACHED)"
