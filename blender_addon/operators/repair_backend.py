"""Repair Backend: build the backend's environment afresh beside the old one and swap it in once complete."""

from __future__ import annotations

import bpy

from .setup_backend import BackendSetup


class GTR_OT_repair_backend(BackendSetup, bpy.types.Operator):
    """Reinstall the backend into a fresh Python environment (for this machine's PyTorch build); the old one is
    replaced only when the new one is complete, and stays in use if the repair fails"""

    bl_idname = "gtr.repair_backend"
    bl_label = "Repair Backend"

    repair = True
