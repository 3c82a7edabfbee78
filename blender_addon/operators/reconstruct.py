"""Reconstruct: the imported views -> a textured mesh at the 3D cursor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from mathutils import Matrix

from ..contract import contract
from ..frames import BACKEND_TO_BLENDER, xyz
from ..paths import new_job_folder
from ..props import settings, status
from ..results import add_result
from .base import BackendJobOperator, Result, reconstruct_options, weights_and_device


def view_spec(context: bpy.types.Context) -> dict[str, Any]:
    s = settings(context)
    spec: dict[str, Any] = {"path": s.views_path, "orbit": None, "zero123pp": s.views_source == "ZERO123PP"}
    if s.views_source == "ORBIT":
        spec["orbit"] = {
            "azimuths": None,
            "elevation": s.orbit_elevation,
            "fov": s.orbit_fov,
            "distance": s.orbit_distance,
        }
    return spec


class GTR_OT_reconstruct(BackendJobOperator, bpy.types.Operator):
    """Reconstruct a textured mesh from the imported views (runs in the background; Esc cancels)"""

    bl_idname = "gtr.reconstruct"
    bl_label = "Reconstruct"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(settings(context).views_path) and not status(context).running

    def execute(self, context: bpy.types.Context) -> Result:
        self.folder = self.new_job = new_job_folder()
        self.cursor = context.scene.cursor.location.copy()
        return self.launch(
            context,
            "reconstruct",
            views=view_spec(context),
            job=str(self.folder),
            options=reconstruct_options(context),
            **weights_and_device(context),
        )

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        path = Path(settings(context).views_path)
        name = f"GTR {(path.parent.name if path.name == contract.CAMERAS_JSON else path.stem) or 'result'}"
        add_result(context, self.folder, name, Matrix.Translation(xyz(self.cursor)), BACKEND_TO_BLENDER)
