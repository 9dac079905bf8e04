"""Every REST endpoint, called with plain HTTP."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
import requests

from dataprovider import __version__, protocol
from dataprovider.sources.sample import load_sample, sample_entries


@pytest.fixture
def api(live_server):
    server = live_server()
    return server.url + "/api"


def sample(ticker: str, resolution: str = "1d") -> pd.DataFrame:
    return load_sample(next(e for e in sample_entries() if (e.ticker, e.resolution.value) == (ticker, resolution)))


def test_health(api):
    body = requests.get(f"{api}/health", timeout=10).json()
    assert body["status"] == "ok" and body["server_version"] == __version__
    assert body["protocol_version"] == protocol.PROTOCOL_VERSION
    assert body["cached_instruments"] == len(sample_entries())


def test_instruments(api):
    rows = requests.get(f"{api}/instruments", timeout=10).json()["instruments"]
    by_key = {(r["ticker"], r["resolution"]): r for r in rows}
    assert set(by_key) == {(e.ticker, e.resolution.value) for e in sample_entries()}
    btc = by_key[("BTC-USD", "1h")]
    frame = sample("BTC-USD", "1h")
    assert btc["rows"] == len(frame) and pd.Timestamp(btc["last"]) == frame.index[-1]
    assert btc["source"] == "sample" and btc["timezone"] == "UTC"


def test_data_as_json(api):
    body = requests.get(
        f"{api}/data/AAPL",
        params={"period": "max", "start": "2015-01-01", "end": "2015-01-31", "local_only": "true"},
        timeout=10,
    ).json()
    frame = protocol.decode_frame(body["data"])
    expected = sample("AAPL").loc["2015-01-01":"2015-01-31"]
    pd.testing.assert_frame_equal(frame, expected)
    assert body["rows"] == len(expected) == 20 and body["resolution"] == "1d"


def test_data_as_csv(api):
    response = requests.get(f"{api}/data/SPY", params={"limit": 5, "local_only": "1", "format": "csv"}, timeout=10)
    assert response.headers["Content-Type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(response.text), index_col="Date")
    expected = sample("SPY").iloc[-5:]
    assert list(frame.columns) == list(expected.columns)
    assert [pd.Timestamp(t) for t in frame.index] == list(expected.index)
    assert frame["Close"].tolist() == pytest.approx(expected["Close"].tolist(), rel=1e-12)
    assert json.loads(response.headers["X-Dataprovider-Summary"])["rows"] == 5


def test_data_as_arrow(api):
    response = requests.get(
        f"{api}/data/%5EGSPC",
        params={"resolution": "1m", "period": "1d", "format": "arrow", "local_only": "true"},
        timeout=10,
    )
    assert response.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    frame = protocol.frame_from_arrow(response.content)
    expected = sample("^GSPC", "1m").loc["2019-11-08"]
    pd.testing.assert_frame_equal(frame, expected)


def test_data_resampled(api):
    body = requests.get(
        f"{api}/data/^GSPC", params={"resolution": "1h", "period": "1d", "local_only": "true"}, timeout=10
    ).json()
    frame = protocol.decode_frame(body["data"])
    assert [t.strftime("%H:%M") for t in frame.index] == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    assert body["source"].startswith("resampled from 1m")


def test_batch(api):
    body = requests.post(
        f"{api}/batch", json={"tickers": ["GOOG", "INTC", "NOPE"], "limit": 3, "local_only": True}, timeout=10
    ).json()
    assert set(body["results"]) == {"GOOG", "INTC"} and body["errors"]["NOPE"]["code"] == "NOT_CACHED"
    pd.testing.assert_frame_equal(protocol.decode_frame(body["results"]["INTC"]["data"]), sample("INTC").iloc[-3:])


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("get", "/data/NOPE", {"params": {"local_only": "true"}}, 404, "NOT_CACHED"),
        ("get", "/data/..%2F..%2Fetc", {}, 400, "INVALID_TICKER"),
        ("get", "/data/SPY", {"params": {"resolution": "7m"}}, 400, "INVALID_RESOLUTION"),
        ("get", "/data/SPY", {"params": {"limit": "ten"}}, 400, "INVALID_LIMIT"),
        ("get", "/data/SPY", {"params": {"local_only": "maybe"}}, 400, "INVALID_PAYLOAD"),
        ("get", "/data/SPY", {"params": {"format": "xml"}}, 400, "INVALID_FORMAT"),
        ("get", "/data/SPY", {"params": {"nonsense": "1"}}, 400, "INVALID_PAYLOAD"),
        ("get", "/data/SPY?limit=1&limit=2", {}, 400, "INVALID_PAYLOAD"),
        ("get", "/data/SPY", {"params": {"start": "2015-13-45"}}, 400, "INVALID_TIME_RANGE"),
        ("post", "/batch", {"data": "not json"}, 400, "INVALID_PAYLOAD"),
        ("post", "/batch", {"json": {"tickers": "SPY"}}, 400, "INVALID_PAYLOAD"),
        ("get", "/nowhere", {}, 404, "UNKNOWN_ENDPOINT"),
        ("delete", "/health", {}, 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_errors_are_json_with_codes(api, method, path, kwargs, status, code):
    response = requests.request(method, api + path, timeout=10, **kwargs)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_batch_rejects_arrow_and_echoes_request_id(api):
    response = requests.post(
        f"{api}/batch", json={"request_id": "b2", "tickers": ["SPY"], "format": "arrow"}, timeout=10
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["request_id"], error["details"]["allowed"]) == ("INVALID_FORMAT", "b2", ["json"])


def test_same_day_and_mixed_timezone_windows_are_accepted(api):
    one_day = requests.get(
        f"{api}/data/BTC-USD",
        params={
            "resolution": "1h",
            "period": "max",
            "local_only": "true",
            "start": "2019-10-15T10:00:00",
            "end": "2019-10-15",
        },
        timeout=10,
    ).json()
    assert one_day["rows"] == 14  # 10:00 .. 23:00 UTC
    mixed = requests.get(
        f"{api}/data/^GSPC",
        params={
            "resolution": "1m",
            "period": "max",
            "local_only": "true",
            "start": "2019-11-05T10:00:00-05:00",
            "end": "2019-11-05T12:00:00",
        },
        timeout=10,
    ).json()
    assert mixed["rows"] == 121  # 10:00 .. 12:00 New York
    inverted = requests.get(f"{api}/data/SPY", params={"start": "2015-02-01", "end": "2015-01-31"}, timeout=10)
    assert inverted.json()["error"]["code"] == "INVALID_TIME_RANGE"


def test_aliases_cannot_both_be_given_and_limit_reads_like_json(api):
    both = requests.get(f"{api}/data/SPY", params={"start": "2015-01-01", "time_start": "2016-01-01"}, timeout=10)
    assert both.status_code == 400 and both.json()["error"]["field"] == "time_start"
    five = requests.get(f"{api}/data/SPY", params={"limit": "5.0", "local_only": "true"}, timeout=10).json()
    assert five["rows"] == 5


def test_offline_not_cached_says_how_to_get_data(api):
    error = requests.get(f"{api}/data/NOPE", timeout=10).json()["error"]
    assert error["code"] == "NOT_CACHED" and "runs offline" in error["message"]
