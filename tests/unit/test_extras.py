"""The extras match where code runs: each layer's outside imports come with the packages listed for it.

`pip install dataprovider` must be enough for the shared vocabulary, the protocol and the client;
`[notebook]` for the notebook layer; `[server]` for the engine, the sources and the server. A module
counts as provided when a listed package, or one of the packages it needs (read from the installed
metadata), installs it. tests/integration/test_bare_client.py proves the client's part in a real venv.
"""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.dependencies import CLIENT, ROOT, by_name, group

#: Where each group's code lives (the client's group is what every other one builds on).
LAYERS = {
    CLIENT: [*ROOT.glob("dataprovider/*.py"), ROOT / "dataprovider/protocol", ROOT / "dataprovider/client"],
    "notebook": [ROOT / "dataprovider/notebook"],
    "server": [ROOT / "dataprovider/engine", ROOT / "dataprovider/sources", ROOT / "server"],
}
FIRST_PARTY = {"dataprovider", "server", "__future__"}


def outside_imports(paths: list[Path]) -> set[str]:
    """The top-level names of every module imported anywhere in ``paths`` that is neither stdlib nor ours."""
    names: set[str] = set()
    for path in paths:
        for file in [path] if path.is_file() else path.rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - FIRST_PARTY - set(sys.stdlib_module_names)


def installed_with(requirements: list[Requirement]) -> set[str]:
    """The distributions ``requirements`` install: them and, from the installed metadata, what they need."""
    seen: set[tuple[str, frozenset[str]]] = set()  # (distribution, extras asked of it)
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        environments = [{"extra": extra} for extra in ("", *requirement.extras)]
        for line in metadata.requires(key[0]) or []:
            needed = Requirement(line)
            if needed.marker is None or any(needed.marker.evaluate(env) for env in environments):
                todo.append(needed)
    return {name for name, _ in seen}


def test_all_is_the_notebook_and_the_server_and_test_includes_it():
    assert by_name(group("all")) == by_name(group("notebook") + group("server"))
    assert by_name(group("all")).items() <= by_name(group("test")).items()


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_what_its_group_installs(layer):
    imported = outside_imports(LAYERS[layer])
    assert imported, "the scan found the layer's imports"
    groups = [CLIENT] if layer == CLIENT else [CLIENT, layer]
    installed = installed_with([requirement for name in groups for requirement in group(name)])
    homes = metadata.packages_distributions()
    missing = {name for name in imported if not {canonicalize_name(d) for d in homes.get(name, [])} & installed}
    assert missing == set(), f"{layer} imports these, and pyproject.toml's {' + '.join(groups)} does not install them"
