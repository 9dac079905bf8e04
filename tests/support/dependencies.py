"""pyproject.toml's dependency groups, read with ``packaging``: the client's list and each extra.

An extra may name others through the project itself (``all = ["dataprovider[notebook,server]"]``);
:func:`group` follows those references, so each group is the plain list of outside packages it adds.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: The name the extras use to refer to the project itself.
NAME = canonicalize_name(PROJECT["name"])
#: What `pip install dataprovider` installs, under this name.
CLIENT = "client"


def group(name: str) -> list[Requirement]:
    """The outside packages of the client (:data:`CLIENT`) or of one extra, references followed."""
    entries = PROJECT["dependencies"] if name == CLIENT else PROJECT["optional-dependencies"][name]
    found: list[Requirement] = []
    for requirement in map(Requirement, entries):
        if canonicalize_name(requirement.name) != NAME:
            found.append(requirement)
            continue
        for extra in sorted(requirement.extras):
            found.extend(item for item in group(extra) if item not in found)
    return found


def by_name(requirements: list[Requirement]) -> dict[str, Requirement]:
    """``requirements`` keyed by canonical name."""
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def full_set() -> dict[str, Requirement]:
    """The client's packages and every extra's, keyed by canonical name."""
    names = [CLIENT, *PROJECT["optional-dependencies"]]
    return by_name([requirement for name in names for requirement in group(name)])
