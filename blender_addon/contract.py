"""The backend's contract (`gtr_backend/contract.py`: protocol version, request fields, job-folder files, view
folder format, image suffixes, working volume, the check that cameras go around the object) and its checks of
files given to be read (`gtr_backend/files.py`), imported from the bundled backend so the add-on keeps no
copies. Both modules are plain Python (no torch); `gtr_backend/__init__.py` imports nothing heavy up front.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any


def _load(name: str) -> Any:
    here = Path(__file__).resolve().parent
    if (here / "gtr_backend").is_dir():  # inside the built extension: the backend is a sub-package
        return importlib.import_module(f"{__package__}.gtr_backend.{name}")
    root = str(here.parent)  # development layout: gtr_backend sits beside blender_addon
    if root not in sys.path:
        sys.path.append(root)
    return importlib.import_module(f"gtr_backend.{name}")


if TYPE_CHECKING:
    from gtr_backend import contract, files
else:
    contract = _load("contract")
    files = _load("files")

__all__ = ["contract", "files"]
