"""`pip install dataprovider` alone is a working client: installed into a fresh venv, it fetches bars.

The project is built from a copy of the checkout (so the build writes nothing into it) and installed
without extras into a new virtual environment, from PyPI, held to requirements.txt's tested
versions. That environment has neither Flask nor plotly; a script run there fetches SPY from a
server running in this process, and gets the same frame the server's own client gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support.frames import assert_same_frame

ROOT = Path(__file__).resolve().parents[2]
#: What building the project needs (pyproject.toml's packages and readme).
BUILD_INPUTS = ["pyproject.toml", "README.md", "dataprovider", "server"]
#: Packages of the extras, none of which the client's install may bring.
NOT_INSTALLED = ["flask", "flask_socketio", "werkzeug", "yfinance", "filelock", "platformdirs", "plotly", "ipywidgets"]

#: Run in the new venv as ``python fetch.py URL OUT_DIR NAMES_JSON``; prints a JSON report.
SCRIPT = """
import importlib, json, sys
from pathlib import Path

import dataprovider
from dataprovider import DataProviderLocal

url, out, names = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
importable = []
for name in names:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    importable.append(name)
provider = DataProviderLocal(url, timeout=20, raise_errors=True)
df = provider.get_data_socket("SPY", "1d", "1y", local_only=True)
df.to_parquet(out / "spy.parquet")
batch = provider.get_batch_data_socket(["SPY", "AAPL"], "1d", "1y", local_only=True, progress="widget")
report = {"rows": len(df), "batch": {ticker: len(frame) for ticker, frame in batch.items()}}
print(json.dumps({**report, "importable": importable, "package": dataprovider.__file__}))
"""


def run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``; fail the test with its output if it exits non-zero."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.venv
@pytest.mark.timeout(900)
def test_the_bare_client_fetches_bars_from_a_running_server(tmp_path, live_server):
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pins = tmp_path / "pins.txt"  # requirements.txt without `-e .`: pip takes no editable constraint
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins.write_text("\n".join(line for line in lines if not line.startswith("-e ")))
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--quiet", str(source), "-c", str(pins)], timeout=840)

    server = live_server()
    (tmp_path / "fetch.py").write_text(SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    command = [str(python), "fetch.py", server.url, str(tmp_path), json.dumps(NOT_INSTALLED)]
    result = run(command, timeout=120, cwd=tmp_path, env=env)
    report = json.loads(result.stdout.splitlines()[-1])

    assert report["importable"] == []  # the extras' packages are not there
    assert Path(report["package"]).is_relative_to(venv)  # the installed copy ran, not the checkout
    expected = server.client().get_data_socket("SPY", "1d", "1y", local_only=True)
    assert report["rows"] == len(expected) == 252
    assert_same_frame(pd.read_parquet(tmp_path / "spy.parquet"), expected)
    assert report["batch"] == {"SPY": 252, "AAPL": 252}
    assert "2 tickers" in result.stderr  # the text progress bar stood in for the widget, and summed up
