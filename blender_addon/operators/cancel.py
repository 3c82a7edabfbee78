"""Cancel: stop the running GTR job (Esc in the viewport does the same)."""

from __future__ import annotations

import bpy

from ..props import status
from .base import Result


class GTR_OT_cancel(bpy.types.Operator):
    """Stop the running GTR job; the scene stays as it was"""

    bl_idname = "gtr.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return status(context).running

    def execute(self, context: bpy.types.Context) -> Result:
        status(context).cancel_requested = True
        return {"FINISHED"}
