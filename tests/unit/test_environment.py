"""environment.yml and pyproject.toml must list the same dependencies with the same minimum versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# conda-forge names that differ from the PyPI names.
CONDA_TO_PYPI = {"python-kaleido": "kaleido"}


def _requirement(text: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", text).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(map(_requirement, project["dependencies"] + project["optional-dependencies"]["test"]))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    listed: dict[str, str] = {}
    pip_section: list[str] = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip_section = entry["pip"]
            continue
        name, spec = _requirement(entry)
        if name not in ("python", "pip"):
            listed[CONDA_TO_PYPI.get(name, name)] = spec
    assert "-e ." in pip_section  # the project itself, editable
    listed.update(_requirement(item) for item in pip_section if not item.startswith("-e"))
    assert listed == wanted
    python = next(e for e in env["dependencies"] if isinstance(e, str) and e.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]
