"""Export GLB: the active GTR result as it is in the scene (edits, transform, material) into a .glb file."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty

from ..contract import errors, files
from ..results import BASE_NAME_PROPERTY, lod_chain
from .base import Result


def gtr_result(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type == "MESH" and obj.get(BASE_NAME_PROPERTY) is not None


class GTR_OT_export_glb(bpy.types.Operator):
    """Export the active GTR result and its levels of detail as a binary glTF (.glb) file: meshes, UVs, textures"""

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
        """The active object (with the rest of its chain of levels of detail, NAME_LOD0, NAME_LOD1, ...) through
        Blender's glTF exporter (modifiers applied), written beside `target` and renamed over it only when
        complete, so a failed export never leaves a half-written file there. Levels hidden in the viewport are
        shown for the export and hidden again."""
        obj = context.active_object
        assert obj is not None  # (poll)
        chain = lod_chain(obj)
        selected = list(context.selected_objects)
        hidden = [part for part in chain if part.hide_get()]
        try:
            with files.atomic_path(target) as temporary:
                for other in selected:
                    other.select_set(False)
                for part in chain:
                    part.hide_set(False)
                    part.select_set(True)
                done = bpy.ops.export_scene.gltf(
                    filepath=str(temporary), export_format="GLB", use_selection=True, export_apply=True
                )
                if done != {"FINISHED"} or temporary.stat().st_size == 0:
                    raise RuntimeError("the glTF exporter wrote nothing")
        finally:
            for part in chain:
                part.select_set(False)
            for part in hidden:
                part.hide_set(True)
            for other in selected:
                other.select_set(True)
