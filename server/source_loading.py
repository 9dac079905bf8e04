"""The source a server fetches from, as ``--source`` names it.

``--source`` takes one of:

* ``yahoo`` (the default): Yahoo Finance through yfinance
  (:class:`~dataprovider.sources.yahoo.YahooSource`);
* ``MODULE:FACTORY``: MODULE is a module name (``team.bars``) or the path of a
  ``.py`` file (``./team_source.py``, loaded on its own under a private module
  name), and FACTORY a callable in it, called with no arguments, that returns
  the source;
* ``NAME``: the entry point of that name in the group ``dataprovider.sources``,
  which installed packages declare in their metadata (a factory as above).

Whatever it names must return a :class:`~dataprovider.sources.Source`: an object
with a non-empty ``name`` and a ``fetch`` method. Every way it can go wrong is a
:class:`SourceLoadError` whose message says what was wrong and how to fix it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from dataprovider.sources import Source

__all__ = ["DEFAULT_SOURCE", "ENTRY_POINT_GROUP", "SourceLoadError", "load_source", "source_names"]

#: The built-in source, used unless ``--source`` says otherwise.
DEFAULT_SOURCE = "yahoo"
#: The entry-point group where installed packages register sources.
ENTRY_POINT_GROUP = "dataprovider.sources"

_MODULE_FACTORY = (
    "MODULE:FACTORY (a module name or a .py file, and the function in it that returns the source; docs/SOURCES.md)"
)


class SourceLoadError(ValueError):
    """``--source`` does not lead to a source; the message says why and what to give instead."""


def source_names() -> list[str]:
    """The names ``--source NAME`` accepts: the built-in one and the installed entry points, sorted.

    Examples
    --------
    >>> "yahoo" in source_names()
    True
    """
    return sorted({DEFAULT_SOURCE, *(point.name for point in entry_points(group=ENTRY_POINT_GROUP))})


def load_source(spec: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Source:
    """Make the source ``spec`` names (see the module docstring) and check that it is one.

    Parameters
    ----------
    spec : str
        ``yahoo``, ``NAME`` or ``MODULE:FACTORY``.
    cache_dir : path-like, optional
        Where the built-in Yahoo source keeps yfinance's caches.

    Raises
    ------
    SourceLoadError
        If the module, file, attribute or entry point does not exist or fails to
        load, if the factory raises, or if what it returns lacks ``name`` or ``fetch``.

    Examples
    --------
    >>> load_source("no_such_module:make_source")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    server.source_loading.SourceLoadError: no module named 'no_such_module' can be imported (...
    """
    if spec == DEFAULT_SOURCE:
        factory = _yahoo(cache_dir)
    elif ":" in spec:
        factory = _attribute(*spec.rsplit(":", 1))
    else:
        factory = _entry_point(spec)
    try:
        source = factory()
    except Exception as exc:
        raise SourceLoadError(f"{spec} failed to make the source: {type(exc).__name__}: {exc}") from exc
    _check(source, spec)
    return source


def _yahoo(cache_dir: str | os.PathLike[str] | None) -> Callable[[], Source]:
    def make() -> Source:
        from dataprovider.sources.yahoo import YahooSource

        return YahooSource(cache_dir=cache_dir)

    return make


def _attribute(module_name: str, attribute: str) -> Callable[[], Any]:
    """FACTORY of MODULE:FACTORY."""
    if not module_name or not attribute:
        raise SourceLoadError(f"{module_name}:{attribute} lacks a module or a factory: give {_MODULE_FACTORY}")
    module = _module(module_name)
    try:
        factory = getattr(module, attribute)
    except AttributeError:
        own = sorted(
            name
            for name, value in vars(module).items()
            if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
        )
        raise SourceLoadError(
            f"{module_name} has no attribute {attribute!r}; the functions and classes it defines are "
            f"{', '.join(own) or 'none'}"
        ) from None
    if not callable(factory):
        raise SourceLoadError(
            f"{module_name}:{attribute} is {_kind(factory)}, not callable: name a function (or class) "
            "that takes no arguments and returns the source"
        )
    return factory


def _module(name: str) -> ModuleType:
    """A module by name, or loaded from a .py file when ``name`` is a path."""
    if name.endswith(".py") or "/" in name or os.sep in name:
        return _module_from_file(Path(name).expanduser())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise SourceLoadError(
                f"no module named {name!r} can be imported (is its package installed, or its folder on "
                "PYTHONPATH?); for a file give its path, e.g. ./team_source.py:make_source"
            ) from None
        raise SourceLoadError(f"importing {name} failed: {exc}") from exc
    except Exception as exc:
        raise SourceLoadError(f"importing {name} failed: {type(exc).__name__}: {exc}") from exc


def _module_from_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise SourceLoadError(f"file {path} does not exist (the path is read from {Path.cwd()})")
    # A private name: a file called json.py must not replace the json module.
    spec = importlib.util.spec_from_file_location(f"dataprovider_source_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SourceLoadError(f"{path} cannot be loaded as Python source: give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickle look a class's module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[spec.name]
        raise SourceLoadError(f"loading {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _entry_point(name: str) -> Callable[[], Any]:
    """The factory an installed package registers as ``name``."""
    points = entry_points(group=ENTRY_POINT_GROUP).select(name=name)
    if not points:
        raise SourceLoadError(
            f"no source is named {name!r}: the names are {', '.join(source_names())}; or give {_MODULE_FACTORY}"
        )
    point = next(iter(points))
    package = f" of package {point.dist.name}" if point.dist is not None else ""
    try:
        return point.load()
    except Exception as exc:
        raise SourceLoadError(
            f"the entry point {name} = {point.value}{package} failed to load: {type(exc).__name__}: {exc}"
        ) from exc


def _check(source: object, spec: str) -> None:
    """Refuse what is not a source, saying which member it lacks."""
    name = getattr(source, "name", None)
    problems = []
    if not isinstance(name, str) or not name:
        problems.append("no `name` (a non-empty str)")
    if not callable(getattr(source, "fetch", None)):
        problems.append("no `fetch(ticker, resolution, start, end)` method")
    if problems:
        raise SourceLoadError(
            f"{spec} returned {_kind(source)}, which is not a source: it has {' and '.join(problems)} "
            "(see dataprovider.sources.Source)"
        )


def _kind(value: object) -> str:
    return "None" if value is None else f"an object of type {type(value).__qualname__}"
