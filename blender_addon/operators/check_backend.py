"""Check Backend: start the backend if needed and report its device, versions and weights."""

from __future__ import annotations

from typing import Any, cast

import bpy

from ..contract import contract
from ..props import status
from .base import BackendRequestOperator


class GTR_OT_check_backend(BackendRequestOperator, bpy.types.Operator):
    """Start the backend and report its device (GPU name or CPU), versions and the weights it finds"""

    bl_idname = "gtr.check_backend"
    bl_label = "Check Backend"

    request = "hello"

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        reply = cast("contract.HelloReply", message)
        weights = reply["weights"] or "none bundled: set a weights file"
        info = (
            f"{reply['device']} - gtr_backend {reply['version']}, torch {reply['torch']}, "
            f"protocol {reply['protocol']}, weights: {weights}"
        )
        status(context).backend_info = info
        self.report({"INFO"}, f"GTR backend: {info}")
