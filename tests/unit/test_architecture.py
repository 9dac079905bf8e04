"""The dependency rule of ARCHITECTURE.md: the import contracts, and what a fresh interpreter loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_import_contracts_hold(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def layers(modules: set[str]) -> set[str]:
    """Which of the layers (and heavy outside packages) ``modules`` include."""
    watched = [
        "dataprovider.client",
        "dataprovider.notebook",
        "dataprovider.engine",
        "dataprovider.sources",
        "server",
        "flask",
        "flask_socketio",
        "yfinance",
        "plotly",
        "ipywidgets",
    ]
    return {name for name in watched if any(m == name or m.startswith(name + ".") for m in modules)}


def test_the_server_loads_neither_the_client_nor_the_notebook_layer():
    loaded = layers(loaded_after("import server.app"))
    assert "dataprovider.engine" in loaded and "flask" in loaded  # the statement did load the server
    assert not loaded & {"dataprovider.client", "dataprovider.notebook", "plotly", "ipywidgets"}


def test_the_client_loads_neither_flask_nor_the_engine():
    loaded = layers(loaded_after("from dataprovider import DataProviderLocal"))
    assert "dataprovider.client" in loaded
    assert not loaded & {"dataprovider.engine", "dataprovider.sources", "server", "flask", "flask_socketio", "yfinance"}
    assert not loaded & {"plotly", "ipywidgets"}  # progress widgets and charts load when first used


def test_the_protocol_loads_no_layer():
    assert layers(loaded_after("from dataprovider import protocol")) == set()


@pytest.mark.parametrize(
    "statement", ["import dataprovider", "from dataprovider import DataResolution, DataProviderError"]
)
def test_the_shared_vocabulary_loads_no_layer(statement):
    assert layers(loaded_after(statement)) == set()
