"""The seed's commands: `python server.py`, then the examples run as users run them, against that server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests

from dataprovider import DataProviderLocal
from dataprovider.engine.store import DeltaStore
from dataprovider.notebook.launcher import free_port, start_process, stop
from dataprovider.sources.sample import sample_entries

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory) -> Path:
    """The data dir of the module's ``python server.py``."""
    return tmp_path_factory.mktemp("server-py") / "data"


@pytest.fixture(scope="module")
def server_url(server_dir) -> Iterator[str]:
    """``python server.py`` on a free port, offline, over a fresh data dir (it loads the sample data)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--data-dir", str(server_dir)]
    log = server_dir.parent / "out"
    process = start_process([*command, "--log-file", "", "--offline"], f"{url}/api/health", log, cwd=server_dir.parent)
    yield url
    stop(process)


def run_example(name: str, url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python examples/NAME ARGS...`` from ``cwd``, its client pointed at ``url`` by $DATAPROVIDER_URL."""
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        env={**os.environ, "DATAPROVIDER_URL": url},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def describe(frame: pd.DataFrame) -> str:
    return f"{len(frame)} rows, {frame.index[0]} -> {frame.index[-1]}"


def test_server_py_shows_the_serve_options():
    result = subprocess.run(
        [sys.executable, "server.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout and "--data-dir" in result.stdout and "import" in result.stdout


def test_server_py_serves_the_sample_data_with_the_options_given(server_url, server_dir):
    health = requests.get(f"{server_url}/api/health", timeout=10).json()
    assert health["status"] == "ok" and health["upstream"] is None  # --offline reached the server
    assert health["cached_instruments"] == len(sample_entries())
    cached = DeltaStore(server_dir).list_datasets()  # and so did --data-dir: the samples were seeded there
    assert len(cached) == len(sample_entries()) and (server_dir / "1d" / "SPY" / "_delta_log").is_dir()


def test_websocket_usage_prints_what_the_server_holds(server_url, tmp_path):
    result = run_example("websocket_usage.py", server_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"server: {server_url}"
    direct = DataProviderLocal(server_url, timeout=20)
    btc = direct.get_data_socket("BTC-USD", "1d", "1y", local_only=True)
    eth = direct.get_data_socket("ETH-USD", "1h", "1mo", limit=100, local_only=True)
    assert f"BTC-USD 1d 1y: {describe(btc)}" in lines
    assert f"ETH-USD 1h 1mo limit 100: {describe(eth)}" in lines
    assert "  callback: ETH-USD 1h 100 rows from sample" in lines
    assert any(line.startswith("  error callback: MSFT NOT_CACHED: ") for line in lines)
    assert "MSFT 1d 1y: failed (see the message above)" in lines
    assert [line for line in lines if line.startswith("  progress ")] == [
        "  progress 1/4 BTC-USD ok",
        "  progress 2/4 ETH-USD ok",
        "  progress 3/4 SPY ok",
        "  progress 4/4 AAPL ok",
    ]
    for ticker in ["BTC-USD", "ETH-USD", "SPY", "AAPL"]:
        frame = direct.get_data_socket(ticker, "1d", "1y", limit=100, local_only=True)
        assert f"batch {ticker}: {describe(frame)}" in lines
    for ticker in ["SPY", "AAPL", "GOOG"]:
        year = direct.get_data_socket(ticker, "1d", "max", "2015-01-01", "2015-12-31", local_only=True)
        assert len(year) == 252 and f"{ticker} 2015: {describe(year)}" in lines
    assert f"The cache holds {len(sample_entries())} datasets:" in lines


def test_rest_check_reports_health_and_one_request(server_url, tmp_path):
    result = run_example("rest_check.py", server_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"health: ok at {server_url} (server ")
    spy = DataProviderLocal(server_url, timeout=20).get_data("SPY", "1d", "1y", local_only=True)
    assert lines[1] == f"GET /api/data/SPY: {describe(spy)}"
    assert lines[2].split() == ["Open", "High", "Low", "Close", "Volume"]


def test_rest_check_says_why_it_fails(server_url, tmp_path):
    result = run_example("rest_check.py", server_url, "MSFT", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error NOT_CACHED: MSFT 1d is not in the cache")
    nobody = f"http://127.0.0.1:{free_port()}"
    result = run_example("rest_check.py", nobody, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error CONNECTION_FAILED: Failed to connect to the server at {nobody}")
