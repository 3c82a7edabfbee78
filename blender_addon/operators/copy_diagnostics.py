"""Copy Diagnostics: what a bug report needs (the last message, versions, device, settings and the tail of the
backend's log with its tracebacks) onto the clipboard, in one click."""

from __future__ import annotations

import platform
from pathlib import Path

import bpy

from ..paths import backend_log
from ..preferences import option_values, preferences
from ..props import settings, status
from .base import Result

LOG_LINES = 80  # the tail of the backend log that goes with the report


def log_tail(path: Path, lines: int = LOG_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"


def diagnostics(context: bpy.types.Context) -> str:
    """A plain-text report: message, versions, device, the add-on's settings, the backend log's tail."""
    prefs, state, scene = preferences(context), status(context), settings(context)
    options = {name: getattr(prefs, name) for name in ("backend_mode", "python_path", "device", "weights_path")}
    options.update(option_values(prefs))
    options["keep_jobs"] = prefs.keep_jobs
    capture = {name: getattr(scene, name) for name in ("capture_fov", "capture_elevation", "capture_resolution")}
    lines = [
        "GTR for Blender: diagnostics",
        f"last message: {state.message or '(none)'}",
        f"backend: {state.backend_info or '(not checked: press Check Backend)'}",
        f"Blender {bpy.app.version_string}, {platform.system()} {platform.release()} {platform.machine()}, "
        f"Python {platform.python_version()}",
        f"settings: {options}",
        f"capture: {capture}",
        f"backend log ({backend_log()}), last {LOG_LINES} lines:",
        log_tail(backend_log()),
    ]
    return "\n".join(lines)


class GTR_OT_copy_diagnostics(bpy.types.Operator):
    """Copy the last message, versions, device, settings and the backend log's tail to the clipboard, for a
    bug report"""

    bl_idname = "gtr.copy_diagnostics"
    bl_label = "Copy Diagnostics"

    def execute(self, context: bpy.types.Context) -> Result:
        context.window_manager.clipboard = diagnostics(context)
        self.report({"INFO"}, "GTR: diagnostics copied to the clipboard")
        return {"FINISHED"}
