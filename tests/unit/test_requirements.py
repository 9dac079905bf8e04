"""requirements.txt pins the tested versions of the client and the `all` extra, within pyproject.toml's ranges."""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.dependencies import CLIENT, ROOT, by_name, full_set, group


def read_pins() -> tuple[list[str], dict[str, Version]]:
    """requirements.txt's option lines (``-e .``) and its pins, name -> version."""
    options: list[str] = []
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier  # exactly one ==
        assert specifier.operator == "==", f"{line}: requirements.txt pins exact versions"
        pins[canonicalize_name(requirement.name)] = Version(specifier.version)
    return options, pins


OPTIONS, PINS = read_pins()


def test_it_installs_the_checkout_itself():
    assert OPTIONS == ["-e ."]  # so `python examples/...` finds the package


def test_every_dependency_of_the_client_and_of_all_is_pinned():
    wanted = by_name(group(CLIENT) + group("all"))
    assert sorted(set(wanted) - set(PINS)) == [], "pyproject.toml names these, requirements.txt does not: `make lock`"


@pytest.mark.parametrize("name", sorted(set(PINS) & set(full_set())))
def test_each_pin_is_within_the_range_pyproject_allows(name):
    requirement = full_set()[name]
    assert requirement.specifier.contains(PINS[name], prereleases=True), (
        f"requirements.txt pins {name}=={PINS[name]} outside pyproject.toml's {requirement}: "
        "change the range or run `make lock`"
    )


def test_this_environment_runs_the_pinned_versions():
    """The suite runs against what requirements.txt promises (`make` installs with the pins as constraints)."""
    differing = {}
    for name, version in PINS.items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            differing[name] = (str(version), str(installed))
    assert differing == {}, "pinned vs installed; reinstall with `make setup`, or record new versions with `make lock`"
