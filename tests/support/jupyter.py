"""A sandboxed Jupyter environment for tests that run the notebooks (nbclient, JupyterLab).

The notebooks ask for the kernel 'python3'. Which interpreter that starts depends on
the kernelspecs the user has installed, so :func:`jupyter_environment` writes one
into a directory of its own, put first on ``JUPYTER_PATH``, that starts this
interpreter (the venv with dataprovider installed). Jupyter's config, data and
runtime directories (connection files, lab settings, workspaces) and IPython's
directory move there too, so nothing is read from or written to the user's home.

Examples
--------
::

    for name, value in jupyter_environment(tmp_path / "jupyter", server.url).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["KERNEL_NAME", "jupyter_environment", "merged_environ"]

#: The kernel name the notebooks' metadata asks for.
KERNEL_NAME = "python3"

# Variables that would change what the notebooks show: a forced progress mode, a plotly renderer.
_CLEARED = ("DATAPROVIDER_PROGRESS", "PLOTLY_RENDERER")

_DIRECTORIES = {
    "JUPYTER_PATH": "path",
    "JUPYTER_CONFIG_DIR": "config",
    "JUPYTER_DATA_DIR": "data",
    "JUPYTER_RUNTIME_DIR": "runtime",
    "IPYTHONDIR": "ipython",
}


def jupyter_environment(root: Path, server_url: str) -> dict[str, str | None]:
    """Create the sandbox under ``root``; return the environment changes that use it.

    Parameters
    ----------
    root : Path
        An empty or missing directory for the kernelspec and Jupyter's directories.
    server_url : str
        The dataprovider server the notebooks should use (``DATAPROVIDER_URL``).

    Returns
    -------
    dict
        Variable -> value to set, or None for a variable to remove.
    """
    changes: dict[str, str | None] = {}
    for variable, name in _DIRECTORIES.items():
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        changes[variable] = str(directory)
    kernel_dir = root / _DIRECTORIES["JUPYTER_PATH"] / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    changes["DATAPROVIDER_URL"] = server_url
    changes.update(dict.fromkeys(_CLEARED))
    return changes


def merged_environ(changes: Mapping[str, str | None], base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``base`` with ``changes`` applied, for a subprocess's ``env``."""
    environ = {name: value for name, value in base.items() if name not in changes}
    environ.update({name: value for name, value in changes.items() if value is not None})
    return environ
