"""Reconstruct: the scene's camera rig (or, without one, the imported views) -> a textured mesh, placed on the
rig's origin (or at the 3D cursor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from mathutils import Matrix

from ..contract import contract
from ..frames import BACKEND_TO_BLENDER, xyz
from ..paths import new_job_folder
from ..props import GTR_SceneSettings, settings, status
from ..results import add_result
from ..rig import RigError, find_rig, rig_name, rig_origin, write_views
from .base import BackendJobOperator, Result


def source_spec(s: GTR_SceneSettings, source: str, path: str) -> dict[str, Any]:
    """The `views` of a backend request for imported views at `path` of kind `source` (props.VIEW_SOURCES)."""
    spec: dict[str, Any] = {"path": path, "orbit": None, "zero123pp": source == "ZERO123PP"}
    if source == "ORBIT":
        spec["orbit"] = {
            "azimuths": None,
            "elevation": s.orbit_elevation,
            "fov": s.orbit_fov,
            "distance": s.orbit_distance,
        }
    return spec


def view_spec(context: bpy.types.Context) -> dict[str, Any]:
    """The imported views as the panel describes them (used when the scene has no camera rig)."""
    s = settings(context)
    return source_spec(s, s.views_source, s.views_path)


def views_name(path: Path) -> str:
    """What results from the views at `path` are called after: the folder of a cameras.json, else the stem."""
    return (path.parent.name if path.name == contract.CAMERAS_JSON else path.stem) or "result"


class GTR_OT_reconstruct(BackendJobOperator, bpy.types.Operator):
    """Reconstruct a textured mesh from the camera rig's cameras and images, or the imported views (runs in the
    background; Esc cancels)"""

    bl_idname = "gtr.reconstruct"
    bl_label = "Reconstruct"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        has_views = bool(settings(context).views_path) or find_rig(context.scene) is not None
        return has_views and not status(context).running

    def execute(self, context: bpy.types.Context) -> Result:
        self.folder = self.new_job = new_job_folder()
        rig = find_rig(context.scene)
        if rig is None:
            views = view_spec(context)
            self.origin = Matrix.Translation(xyz(context.scene.cursor.location))
            self.result_name = f"GTR {views_name(Path(settings(context).views_path))}"
        else:  # the rig as it is now: moved, added or deleted cameras, other images
            try:
                self.origin = rig_origin(rig).matrix_world.copy()
                path = write_views(rig, self.folder / "views")
            except (RigError, OSError) as error:
                return self.fail(context, str(error))
            views = {"path": str(path.parent), "orbit": None, "zero123pp": False}
            self.result_name = f"GTR {rig_name(rig)}"
        return self.launch_reconstruct(context, views, self.folder)

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        add_result(context, self.folder, self.result_name, self.origin, BACKEND_TO_BLENDER)
