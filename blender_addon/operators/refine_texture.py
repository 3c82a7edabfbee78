"""Refine Texture: more refinement steps for a mesh the add-on made, against its own input views."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import bpy

from ..contract import contract
from ..props import settings, status
from ..results import JOB_PROPERTY, replace_texture, replace_vertex_colors, set_fidelity, texture_node
from .base import BackendJobOperator, Result


def job_of(obj: bpy.types.Object | None) -> Path | None:
    value = obj.get(JOB_PROPERTY) if obj is not None else None
    if value is None:
        return None
    folder = Path(str(value))
    return folder if (folder / contract.JOB_STATE).is_file() else None


class GTR_OT_refine_texture(BackendJobOperator, bpy.types.Operator):
    """Run more texture-refinement steps on the active GTR result against its input views (undo restores it)"""

    bl_idname = "gtr.refine_texture"
    bl_label = "Refine Texture"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not status(context).running and job_of(context.active_object) is not None

    def execute(self, context: bpy.types.Context) -> Result:
        self.target = context.active_object
        self.folder = job_of(self.target)
        return self.launch(context, "refine", job=str(self.folder), steps=settings(context).refine_steps)

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        assert self.folder is not None and self.target is not None
        reply = cast("contract.RefineReply", message)
        before, after = reply["psnr_before"], reply["psnr_after"]
        if not reply["improved"]:
            status(context).backend_info = f"the texture already matches its views (input-view PSNR {before:.2f} dB)"
            return
        if texture_node(self.target) is not None:
            replace_texture(self.target, self.folder)
        else:
            replace_vertex_colors(self.target, self.folder)
        set_fidelity(self.target, reply.get("fidelity") or {})
        status(context).backend_info = f"input-view PSNR {before:.2f} -> {after:.2f} dB"
