"""The sidebar panel (3D viewport, N panel, tab "GTR"): views, reconstruct, output, render selected, and the
active result (its version and fidelity, export, refine, bake to active)."""

from __future__ import annotations

import textwrap

import bpy

from ..operators.refine_texture import job_of
from ..preferences import draw_output_options, preferences
from ..props import settings, status
from ..results import summary
from ..rig import find_rig, rig_cameras
from .thumbnails import thumbnail_icons

WARNING_WIDTH = 48  # characters per line of a warning: a label does not wrap by itself


class GTR_PT_panel(bpy.types.Panel):
    bl_label = "GTR Reconstruction"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "GTR"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s, state = settings(context), status(context)
        if state.running:
            box = layout.box()
            if hasattr(box, "progress"):
                box.progress(factor=state.progress, type="BAR", text=state.stage or "working")
            else:
                box.label(text=f"{state.stage} {state.progress:.0%}")
            box.operator("gtr.cancel", icon="CANCEL")
        elif state.message:
            row = layout.row()
            row.label(text=state.message, icon="INFO")
            row.operator("gtr.copy_diagnostics", text="", icon="COPYDOWN")
            if state.retry_options:  # the last job ran out of memory: the backend offered lower settings
                layout.operator("gtr.retry_lower", icon="FILE_REFRESH")
        if state.warning and not state.running:  # e.g. cameras that do not go around the object
            col = layout.column(align=True)
            for i, line in enumerate(textwrap.wrap(state.warning, WARNING_WIDTH)):
                col.label(text=line, icon="ERROR" if i == 0 else "BLANK1")
        if state.backend_info:
            row = layout.row()
            row.label(text=state.backend_info, icon="SYSTEM")
            row.operator("gtr.unload_model", text="", icon="UNLINKED")

        box = layout.box()
        box.label(text="Views", icon="IMAGE_DATA")
        box.prop(s, "views_source")
        if s.views_source == "ORBIT":
            col = box.column(align=True)
            col.prop(s, "orbit_elevation")
            col.prop(s, "orbit_fov")
            col.prop(s, "orbit_distance")
        box.operator("gtr.import_views", icon="FILEBROWSER")
        icons = thumbnail_icons()
        if icons:
            grid = box.grid_flow(columns=4, even_columns=True)
            for icon in icons:
                grid.template_icon(icon_value=icon, scale=3.0)
        rig = find_rig(context.scene)
        if rig is not None:  # Reconstruct and Export Views read the rig's cameras and images as they are now
            box.label(text=f"Camera rig: {len(rig_cameras(rig))} camera(s) in '{rig.name}'", icon="OUTLINER_OB_CAMERA")
        box.operator("gtr.reconstruct", icon="MESH_ICOSPHERE")
        box.operator("gtr.export_views", icon="EXPORT")

        # Faithfulness to the input views, for Reconstruct and Render Selected alike (stored as preferences).
        prefs = preferences(context)
        box = layout.box()
        box.label(text="Fit to Views", icon="MOD_SHRINKWRAP")
        col = box.column(align=True)
        col.prop(prefs, "geometry_refine")
        row = col.row()
        row.enabled = prefs.geometry_refine
        row.prop(prefs, "geometry_steps")
        col.prop(prefs, "texture_from_views")

        box = layout.box()
        box.label(text="Output", icon="MESH_DATA")
        draw_output_options(box.column(align=True), prefs)

        box = layout.box()
        box.label(text="Render Selected to 3D", icon="RENDER_STILL")
        col = box.column(align=True)
        col.prop(s, "capture_elevation")
        col.prop(s, "capture_fov")
        col.prop(s, "capture_resolution")
        col.prop(s, "capture_engine")
        if s.capture_engine == "CYCLES":
            col.prop(s, "capture_samples")
        row = box.row(align=True)
        row.prop(s, "capture_views")
        row.prop(s, "capture_held_out")
        box.prop(s, "capture_passes")
        box.prop(s, "capture_auto_faces")
        box.prop(s, "place_beside")
        box.prop(s, "keep_rig")
        box.operator("gtr.render_selected_to_3d", icon="OUTLINER_OB_CAMERA")

        box = layout.box()
        box.label(text="Result", icon="OBJECT_DATA")
        active = context.active_object
        for line in summary(active) if active is not None else []:
            box.label(text=line, icon="ERROR" if line.startswith("Does not match") else "NONE")
        box.operator("gtr.export_glb", icon="EXPORT")
        box.prop(s, "refine_steps")
        row = box.row()
        row.enabled = job_of(active) is not None
        row.operator("gtr.refine_texture", icon="BRUSH_DATA")
        box.operator("gtr.bake_to_active", icon="NODE_TEXTURE")
