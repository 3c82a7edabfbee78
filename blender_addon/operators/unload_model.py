"""Unload Model: the backend drops its loaded model and gives the GPU memory back (the next job loads it again)."""

from __future__ import annotations

from typing import Any, cast

import bpy

from ..contract import contract
from ..props import status
from .base import BackendRequestOperator, Result, get_backend


class GTR_OT_unload_model(BackendRequestOperator, bpy.types.Operator):
    """Free the memory the loaded model holds on the GPU (the next reconstruction loads it again)"""

    bl_idname = "gtr.unload_model"
    bl_label = "Unload Model"

    request = "unload"

    def execute(self, context: bpy.types.Context) -> Result:
        if not get_backend(context).running():  # nothing is loaded: do not start a backend to say so
            status(context).backend_info = "no model is loaded"
            return {"FINISHED"}
        return super().execute(context)

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        unloaded = cast("contract.UnloadReply", message)["unloaded"]
        status(context).backend_info = "model unloaded: its memory is free" if unloaded else "no model was loaded"
