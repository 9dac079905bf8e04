"""The package's public surface and the server's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

import dataprovider
from dataprovider import errors
from server.settings import default_data_dir


def test_all_lists_exactly_the_public_names():
    """__all__ is sorted, each name resolves, and it holds the client, the enums and every error class."""
    assert sorted(dataprovider.__all__) == dataprovider.__all__
    for name in dataprovider.__all__:
        assert getattr(dataprovider, name) is not None, name
    error_classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.DataProviderError)
    }
    seed_names = {"DataProviderLocal", "DataResolution", "DataPeriod", "LiveBar", "Subscription", "__version__"}
    assert set(dataprovider.__all__) == seed_names | error_classes
    public = {name for name in dir(dataprovider) if not name.startswith("_") and name != "annotations"}
    modules = {name for name in public if type(getattr(dataprovider, name)).__name__ == "module"}
    assert public - modules <= set(dataprovider.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'DataProviderRemote'"):
        dataprovider.DataProviderRemote  # noqa: B018


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
