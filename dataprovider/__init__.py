"""dataprovider: a local cache of OHLC price bars with a Jupyter-friendly client.

The package root is the shared vocabulary (enums, errors, instruments, frames,
bars) and re-exports the public names lazily (PEP 562): ``from dataprovider
import DataProviderLocal`` loads the client, while the server's ``from
dataprovider import protocol`` loads no client code.

Examples
--------
>>> import dataprovider
>>> dataprovider.DataResolution("1d")
<DataResolution.DAY_01: '1d'>
"""

from __future__ import annotations

import importlib as _importlib
import logging as _logging
from typing import Any as _Any

from dataprovider import errors as _errors
from dataprovider._version import __version__ as __version__

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

#: Where each public name lives; it is imported on first use. Every error class is public.
_HOMES: dict[str, str] = {
    "DataProviderLocal": "dataprovider.client",
    "LiveBar": "dataprovider.client",
    "Subscription": "dataprovider.client",
    "DataPeriod": "dataprovider.enums",
    "DataResolution": "dataprovider.enums",
    **{name: "dataprovider.errors" for name in _errors.__all__ if name.endswith("Error")},
}

__all__ = sorted([*_HOMES, "__version__"])


def __getattr__(name: str) -> _Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dataprovider' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
