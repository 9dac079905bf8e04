"""Nobody let in where they don't belong: tokens, loopback by default, browser origins, no pickles."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from dataprovider import AuthenticationError, DataProviderLocal
from dataprovider.client.connection import _InOrderSocketIOClient
from dataprovider.notebook.launcher import free_port, start_server, stop
from server.auth import token_matches
from tests.support.dependencies import full_set

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token-with-enough-entropy"


def test_socket_clients_need_the_token(live_server):
    server = live_server(token=TOKEN)
    errors = []
    assert DataProviderLocal(server.url).get_data_socket("SPY", local_only=True, error_callback=errors.append) is None
    assert errors[0]["code"] == "UNAUTHORIZED" and "no token was sent" in errors[0]["message"]
    with pytest.raises(AuthenticationError, match="the token is wrong"):
        DataProviderLocal(server.url, token="guess", raise_errors=True).connect()
    frame = server.client(token=TOKEN).get_data_socket("SPY", limit=3, local_only=True)
    assert len(frame) == 3


def test_rest_calls_need_the_bearer_token(live_server):
    server = live_server(token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": TOKEN}):
        response = requests.get(server.url + "/api/health", headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
    ok = requests.get(server.url + "/api/data/SPY?limit=2", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200 and ok.json()["rows"] == 2
    assert len(server.client(token=TOKEN).get_data("SPY", limit=2, local_only=True)) == 2


def test_the_client_reads_the_token_from_the_environment(live_server, monkeypatch):
    server = live_server(token=TOKEN)
    monkeypatch.setenv("DATAPROVIDER_TOKEN", TOKEN)
    assert DataProviderLocal(server.url).health()["status"] == "ok"


def test_token_comparison():
    assert token_matches(None, None) and token_matches(None, "anything")  # no token configured
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN, TOKEN[:-1]) and not token_matches(TOKEN, None) and not token_matches(TOKEN, 42)


def test_browsers_only_from_the_same_origin_or_an_allowed_one(live_server):
    server = live_server(allowed_origins=("http://localhost:8888",))
    port = server.url.rsplit(":", 1)[1]

    def connects(origin: str) -> bool:
        client = _InOrderSocketIOClient(reconnection=False, websocket_extra_options={"origin": origin})
        try:
            client.connect(server.url, transports=["websocket"], wait_timeout=5)
        except Exception:
            return False
        client.disconnect()
        return True

    assert connects(f"http://127.0.0.1:{port}")  # the server's own origin
    assert connects("http://localhost:8888")  # allowed explicitly
    assert not connects("http://evil.example")
    allowed = requests.get(server.url + "/api/health", headers={"Origin": "http://localhost:8888"}, timeout=10)
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:8888"
    other = requests.get(server.url + "/api/health", headers={"Origin": "http://evil.example"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in other.headers


def test_binding_beyond_loopback_needs_a_token(tmp_path):
    port = free_port()
    args = ["-m", "server", "--host", "0.0.0.0", "--port", str(port), "--data-dir", str(tmp_path), "--no-samples"]
    refused = subprocess.run([sys.executable, *args, "--log-file", ""], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "refusing to serve 0.0.0.0 without a token" in refused.stderr
    with socket.socket() as probe:  # nothing was bound
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    common = ["--host", "0.0.0.0", "--data-dir", str(tmp_path), "--no-samples", "--log-file", ""]
    for extra, expect in ((["--token", TOKEN], "serving"), (["--insecure-no-auth"], "WITHOUT a token")):
        log = tmp_path / f"{extra[0]}.log"
        process = start_server(port, *common, *extra, log=log, cwd=ROOT)
        try:
            assert expect in log.read_text()
        finally:
            stop(process)


def test_nothing_is_ever_unpickled():
    """No module of the library or server imports pickle, or asks numpy or pandas to unpickle."""
    offenders = []
    for path in [*ROOT.glob("dataprovider/**/*.py"), *ROOT.glob("server/**/*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import | ast.ImportFrom) else []
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if "pickle" in names or module in ("pickle", "cloudpickle", "dill") or any("pickle" in n for n in names):
                offenders.append(f"{path}: imports pickle")
            if isinstance(node, ast.Attribute) and node.attr in ("read_pickle", "loads") and "pickle" in ast.dump(node):
                offenders.append(f"{path}: {node.attr}")
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                offenders.append(f"{path}: allow_pickle")
    assert offenders == []


def test_minimum_versions_are_past_known_advisories():
    wanted = {"python-socketio": "5.16.2", "pyarrow": "14.0.1", "werkzeug": "3.1.6"}
    minimums = {name: {spec.version for spec in r.specifier if spec.operator == ">="} for name, r in full_set().items()}
    assert {name: minimums.get(name) for name in wanted} == {name: {version} for name, version in wanted.items()}
