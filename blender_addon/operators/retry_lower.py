"""Retry with Lower Settings: after a job ran out of GPU memory, set the lower settings the backend offered
(coarser grid, smaller texture, fewer faces) as the preferences and run the same job again (in the UI; a
script in background mode gets the settings and runs the operator itself)."""

from __future__ import annotations

import json

import bpy

from ..preferences import apply_options, preferences
from ..props import status
from .base import Result

RETRYABLE = ("gtr.reconstruct", "gtr.render_selected_to_3d")


class GTR_OT_retry_lower(bpy.types.Operator):
    """Set the lower settings the backend suggested after running out of memory, and run the job again"""

    bl_idname = "gtr.retry_lower"
    bl_label = "Retry with Lower Settings"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        state = status(context)
        return not state.running and bool(state.retry_options) and state.retry_operator in RETRYABLE

    def execute(self, context: bpy.types.Context) -> Result:
        state = status(context)
        category, name = state.retry_operator.split(".", 1)
        operator = getattr(getattr(bpy.ops, category), name)
        if not operator.poll():
            self.report({"ERROR"}, f"GTR: {operator.get_rna_type().name} cannot run now (select what it needs first)")
            return {"CANCELLED"}
        lower = json.loads(state.retry_options)
        apply_options(preferences(context), lower)
        words = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in lower.items())
        self.report({"INFO"}, f"GTR: the preferences now ask for {words}; running again")
        if bpy.app.background:  # a script runs the operator itself: nested inside this one, rendering crashes
            return {"FINISHED"}
        operator("INVOKE_DEFAULT")  # goes modal: this operator returns before the job runs
        return {"FINISHED"}
