"""Export Views: write the scene's camera rig as a view folder (cameras.json and the images) that
`gtr reconstruct` and Import Views ("Views with Cameras") read back to the same cameras."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from ..rig import RigError, find_rig, rig_cameras, write_views
from .base import Result


class GTR_OT_export_views(bpy.types.Operator):
    """Write the camera rig's cameras and images as a folder with cameras.json (a new or empty folder)"""

    bl_idname = "gtr.export_views"
    bl_label = "Export Views"
    bl_options = {"REGISTER"}

    directory: StringProperty(subtype="DIR_PATH")  # type: ignore[valid-type]
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return find_rig(context.scene) is not None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> Result:
        rig = find_rig(context.scene)
        if rig is None:
            self.report({"ERROR"}, "GTR: the scene has no camera rig; import views first")
            return {"CANCELLED"}
        if not self.directory:
            self.report({"ERROR"}, "GTR: choose a folder to export the views to")
            return {"CANCELLED"}
        folder = Path(bpy.path.abspath(self.directory))
        try:
            path = write_views(rig, folder)
        except (RigError, OSError) as error:
            self.report({"ERROR"}, f"GTR: {error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"GTR: {len(rig_cameras(rig))} view(s) written to {path}")
        return {"FINISHED"}
