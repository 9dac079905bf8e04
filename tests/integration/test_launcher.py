"""ensure_server: reuse a running server, or start one with the sample data."""

from __future__ import annotations

from dataprovider import DataProviderLocal
from dataprovider.notebook.launcher import STARTED, ensure_server, free_port, stop


def test_uses_a_running_server(live_server, monkeypatch):
    server = live_server()
    monkeypatch.setenv("DATAPROVIDER_URL", server.url)
    assert ensure_server() == server.url
    assert server.url not in STARTED


def test_starts_one_when_none_answers(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    try:
        assert ensure_server(url, data_dir=tmp_path / "data") == url
        frame = DataProviderLocal(url).get_data_socket("SPY", limit=3, local_only=True)
        assert len(frame) == 3
        assert ensure_server(url) == url  # now it answers: nothing new is started
    finally:
        stop(STARTED.pop(url))
    assert STARTED.get(url) is None
