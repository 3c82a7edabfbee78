# SPDX-License-Identifier: GPL-3.0-or-later
"""GTR for Blender: posed views of an object (imported, or rendered from the selected objects) in, a clean
UV-textured mesh out, with an artist texture-refinement button.

Layout: `operators/` (one operator per file), `ui/` (the sidebar panel), `capture.py` (rendering the views),
`results.py` (adding the mesh), `frames.py` (Blender <-> backend coordinates), `backend/` (the process or
thread that runs `gtr_backend`). Nothing here imports torch; only the in-process backend does, on request.
"""

from __future__ import annotations

import bpy

from .backend import shutdown_all
from .operators import OPERATORS
from .preferences import GTR_AddonPreferences
from .props import GTR_SceneSettings, GTR_Status, register_properties, unregister_properties
from .ui.panel import GTR_PT_panel
from .ui.thumbnails import clear_thumbnails

CLASSES = (GTR_AddonPreferences, GTR_SceneSettings, GTR_Status, *OPERATORS, GTR_PT_panel)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    register_properties()


def unregister() -> None:
    shutdown_all()
    clear_thumbnails()
    unregister_properties()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
