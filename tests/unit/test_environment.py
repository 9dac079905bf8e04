"""environment.yml is the full set: every package of pyproject.toml's client list and extras, same minimums."""

from __future__ import annotations

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.dependencies import PROJECT, ROOT, full_set

# conda-forge names that differ from the PyPI names.
CONDA_TO_PYPI = {"python-kaleido": "kaleido"}


def _requirement(text: str) -> tuple[str, str]:
    requirement = Requirement(text)
    name = canonicalize_name(requirement.name)
    return CONDA_TO_PYPI.get(name, name), str(requirement.specifier)


def test_environment_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = [entry for entry in env["dependencies"] if isinstance(entry, str)]
    (pip_section,) = [entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict)]
    assert "-e ." in pip_section  # the project itself, editable
    listed = dict(map(_requirement, conda + [item for item in pip_section if not item.startswith("-e")]))
    python = listed.pop("python")
    assert listed.pop("pip") == ""
    assert listed == {name: str(requirement.specifier) for name, requirement in full_set().items()}
    assert python == PROJECT["requires-python"]
