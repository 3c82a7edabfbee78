"""Export GLB: the active GTR result as it is in the scene (edits, transform, material) into a .glb file."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty

from ..contract import errors, files
from ..results import BASE_NAME_PROPERTY
from .base import Result


def gtr_result(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type == "MESH" and obj.get(BASE_NAME_PROPERTY) is not None


class GTR_OT_export_glb(bpy.types.Operator):
    """Export the active GTR result as a binary glTF (.glb) file: mesh, UVs, texture, normal map, its transform"""

    bl_idname = "gtr.export_glb"
    bl_label = "Export GLB"

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    filter_glob: StringProperty(default="*.glb", options={"HIDDEN"})  # type: ignore[valid-type]
    check_existing: BoolProperty(default=True, options={"HIDDEN"})  # type: ignore[valid-type]  # warn on overwrite

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return gtr_result(context.active_object)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        if not self.filepath:
            self.filepath = bpy.path.clean_name(context.active_object.name) + ".glb"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> Result:
        if not self.filepath:
            self.report({"ERROR"}, "GTR: give the .glb file to write")
            return {"CANCELLED"}
        target = Path(bpy.path.abspath(self.filepath))
        if target.suffix.lower() != ".glb":
            target = target.with_suffix(".glb")
        if not target.parent.is_dir():
            self.report({"ERROR"}, f"GTR: the folder {target.parent} does not exist; choose another")
            return {"CANCELLED"}
        try:
            self.export(context, target)
        except errors.WriteError as error:  # no room, no permission: one line naming the file, the old one kept
            self.report({"ERROR"}, f"GTR: {error}")
            return {"CANCELLED"}
        except (RuntimeError, OSError) as error:
            self.report({"ERROR"}, f"GTR: could not write {target}: {str(error).strip().splitlines()[-1]}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"GTR: wrote {target}")
        return {"FINISHED"}

    def export(self, context: bpy.types.Context, target: Path) -> None:
        """The active object alone through Blender's glTF exporter (modifiers applied), written beside `target`
        and renamed over it only when complete, so a failed export never leaves a half-written file there."""
        obj = context.active_object
        selected = list(context.selected_objects)
        try:
            with files.atomic_path(target) as temporary:
                for other in selected:
                    other.select_set(False)
                obj.select_set(True)
                done = bpy.ops.export_scene.gltf(
                    filepath=str(temporary), export_format="GLB", use_selection=True, export_apply=True
                )
                if done != {"FINISHED"} or temporary.stat().st_size == 0:
                    raise RuntimeError("the glTF exporter wrote nothing")
        finally:
            obj.select_set(False)
            for other in selected:
                other.select_set(True)
