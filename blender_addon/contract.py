"""The bundled backend, found once, and its plain-Python modules the add-on shares.

`backend_source()` is the folder that holds the `gtr_backend` package (inside the built extension the add-on's
own folder, in the repository its root); `backend_module(name)` imports `gtr_backend.<name>` from there: the
extension's sub-package (`<add-on package>.gtr_backend`) or, in the repository, the top-level package. Every
part of the add-on that needs the backend (the contract below, the in-process backend, the separate Python's
working folder) goes through these two.

`contract` (`gtr_backend/contract.py`: protocol version, requests and replies, job-folder files and manifest,
cameras.json's writer and reader, image suffixes, working volume, the check that cameras go around the object)
`files` (`gtr_backend/files.py`: atomic writes and folder swaps, checks of files given to be read) and `errors`
(its error classes) are imported from it, so the add-on keeps no copies. Both modules are plain Python (no torch);
`gtr_backend/__init__.py` imports nothing heavy up front.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent


def backend_source() -> Path:
    """The folder that holds the `gtr_backend` package: inside the built extension, or the repository root."""
    return HERE if (HERE / "gtr_backend").is_dir() else HERE.parent


def backend_module(name: str) -> Any:
    """`gtr_backend.<name>` of the bundled backend (see the module docstring)."""
    if backend_source() == HERE:  # inside the built extension: the backend is a sub-package
        return importlib.import_module(f"{__package__}.gtr_backend.{name}")
    root = str(backend_source())  # development layout: gtr_backend sits beside blender_addon
    if root not in sys.path:
        sys.path.append(root)
    return importlib.import_module(f"gtr_backend.{name}")


if TYPE_CHECKING:
    from gtr_backend import contract, errors, files
else:
    contract = backend_module("contract")
    errors = backend_module("errors")
    files = backend_module("files")

__all__ = ["backend_module", "backend_source", "contract", "errors", "files"]
