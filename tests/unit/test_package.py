"""The package's public surface and the server's settings."""

from __future__ import annotations

from pathlib import Path

import dataprovider
from server.settings import default_data_dir


def test_all_lists_exactly_the_public_names():
    public = {name for name in vars(dataprovider) if not name.startswith("_") and name not in {"annotations"}}
    modules = {name for name in public if type(getattr(dataprovider, name)).__name__ == "module"}
    assert sorted(dataprovider.__all__) == dataprovider.__all__
    assert set(dataprovider.__all__) == (public - modules) | {"__version__"}


def test_every_public_name_has_a_docstring():
    for name in dataprovider.__all__:
        obj = getattr(dataprovider, name)
        if not isinstance(obj, str):
            assert obj.__doc__, name


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("DATAPROVIDER_HOME", str(tmp_path / "env"))
    assert default_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert default_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("DATAPROVIDER_HOME")
    assert default_data_dir(None).name == "dataprovider" and default_data_dir(None) != Path("dataprovider")
