"""Where the add-on keeps its files: only under the extension's user folder, never inside the add-on."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import bpy


def user_folder(name: str) -> Path:
    """`<extension user folder>/<name>`, created; outside an installed extension (development), a temp folder."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path=name, create=True))
    except ValueError:  # loaded as a plain add-on, not as an extension
        folder = Path(tempfile.gettempdir()) / "gtr-blender" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def new_job_folder() -> Path:
    folder = user_folder("jobs") / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    return folder


def backend_log() -> Path:
    """The log both backend modes write to: the separate Python's stderr, and every failed request with its
    traceback (Copy Diagnostics copies its tail)."""
    return user_folder("logs") / "backend.log"


def environment_folder() -> Path:
    return user_folder("backend-env")


def environment_python() -> Path:
    folder = environment_folder()
    return folder / ("Scripts/python.exe" if (folder / "Scripts").is_dir() else "bin/python")
