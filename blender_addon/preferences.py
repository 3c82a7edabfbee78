"""Add-on preferences: where the backend runs and the defaults of every reconstruction."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .backend.hardware import cached_detection
from .contract import contract

BACKEND_MODES = (
    ("SUBPROCESS", "Separate Python", "Run gtr_backend in a Python environment of its own (set up below)"),
    ("IN_PROCESS", "Inside Blender", "Import torch inside Blender's own Python (only if torch is installed there)"),
)
DEVICES = tuple((name, label, text) for name, (label, text) in contract.DEVICES.items())


OPTIONS = contract.RECONSTRUCT_OPTIONS  # the backend's one definition of each option


TEXTURE_VIEWS_ITEMS = (  # numbered: a choice stored by an older version reads as the same choice
    ("auto", "Auto", "Best View where the shape comes from the views' own depth (Render Selected), else Blend", 2),
    ("blend", "Blend", "A mix weighted towards the views that see each point best (forgiving where the shape is "
     "not exact)", 0),
    ("best", "Best View", "Each face from the one view that sees it best, levelled across seams (the sharpest, "
     "where the shape is exact)", 1),
)  # fmt: skip
UV_ITEMS = tuple((choice, choice.capitalize(), OPTIONS["uv"].help) for choice in OPTIONS["uv"].choices)
# Texture sizes offered: the powers of two from 128 px to the option's largest.
# Each item's number is its size, so a size stored by an older version (an integer property) still reads.
TEXTURE_SIZES = tuple(
    (str(1 << k), f"{1 << k} px", OPTIONS["texture_size"].help.capitalize(), 1 << k)
    for k in range(7, int(OPTIONS["texture_size"].high or 4096).bit_length())
)


def texture_size(prefs: GTR_AddonPreferences) -> int:
    """The chosen texture size in pixels (the option's default if the stored choice is not one of ours)."""
    return int(prefs.texture_size) if str(prefs.texture_size).isdigit() else int(OPTIONS["texture_size"].default)


def _number(name: str) -> dict[str, Any]:
    option = OPTIONS[name]
    return {
        "default": option.default,
        "min": int(option.low or 0),
        "max": int(option.high or 0),
        "description": option.help.capitalize(),
    }


def _flag(name: str) -> dict[str, Any]:
    return {"default": OPTIONS[name].default, "description": OPTIONS[name].help.capitalize()}


class GTR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_mode: EnumProperty(name="Backend", items=BACKEND_MODES, default="SUBPROCESS")  # type: ignore[valid-type]
    python_path: StringProperty(  # type: ignore[valid-type]
        name="Python",
        subtype="FILE_PATH",
        description="Interpreter of the environment with torch and the backend's requirements "
        "(empty: the one 'Set Up Backend' creates)",
    )
    weights_path: StringProperty(  # type: ignore[valid-type]
        name="Weights",
        subtype="FILE_PATH",
        description="A .safetensors weights file (empty: the bundled starter weights)",
    )
    wheels_path: StringProperty(  # type: ignore[valid-type]
        name="Wheels Folder",
        subtype="DIR_PATH",
        description="Set up the backend offline from the wheel files in this folder (empty: from the package index)",
    )
    build_gpu_rasterizer: BoolProperty(  # type: ignore[valid-type]
        name="Build the fast GPU rasterizer now",
        default=False,
        description="With an NVIDIA GPU, Set Up Backend also installs nvdiffrast (non-commercial licence) and "
        "ninja and builds nvdiffrast's CUDA rasterizer (1-3 minutes; needs the CUDA toolkit's nvcc), so the first "
        "reconstruction does not build it. Without it, the PyTorch rasterizer runs on the GPU",
    )
    device: EnumProperty(name="Device", items=DEVICES, default="auto")  # type: ignore[valid-type]
    refine_steps: IntProperty(name="Refinement Steps", **_number("refine_steps"))  # type: ignore[valid-type]
    texture_size: EnumProperty(  # type: ignore[valid-type]
        name="Texture Size", items=TEXTURE_SIZES, default=str(OPTIONS["texture_size"].default)
    )
    target_faces: IntProperty(name="Faces", **_number("target_faces"))  # type: ignore[valid-type]
    auto_faces: BoolProperty(name="Auto", **_flag("auto_faces"))  # type: ignore[valid-type]
    lods: IntProperty(name="LODs", **_number("lods"))  # type: ignore[valid-type]
    vertex_colors: BoolProperty(name="Vertex Colours", **_flag("vertex_colors"))  # type: ignore[valid-type]
    mesh_resolution: IntProperty(  # type: ignore[valid-type]
        name="Mesh Resolution",
        default=0,  # the option's "none": chosen by the device
        min=0,
        max=int(OPTIONS["mesh_resolution"].high),
        description=f"{OPTIONS['mesh_resolution'].help.capitalize()}; 0 = automatic",
    )
    geometry_refine: BoolProperty(name="Fit Geometry to Views", **_flag("geometry_refine"))  # type: ignore[valid-type]
    geometry_steps: IntProperty(name="Geometry Steps", **_number("geometry_steps"))  # type: ignore[valid-type]
    texture_from_views: BoolProperty(name="Texture from Views", **_flag("texture_from_views"))  # type: ignore[valid-type]
    texture_views: EnumProperty(  # type: ignore[valid-type]
        name="Views Meet",
        items=TEXTURE_VIEWS_ITEMS,
        default=OPTIONS["texture_views"].default,
    )
    normal_map: BoolProperty(name="Normal Map", **_flag("normal_map"))  # type: ignore[valid-type]
    uv_method: EnumProperty(  # type: ignore[valid-type]
        name="UV Layout",
        items=UV_ITEMS,
        default=OPTIONS["uv"].default,
    )
    keep_jobs: BoolProperty(  # type: ignore[valid-type]
        name="Keep Input Views", default=True, description="Keep each result's views so 'Refine Texture' can run later"
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_mode")
        if self.backend_mode == "SUBPROCESS":
            layout.prop(self, "python_path")
            layout.prop(self, "wheels_path")
        row = layout.row()
        row.operator("gtr.setup_backend", icon="IMPORT")
        row.operator("gtr.repair_backend", icon="FILE_REFRESH")
        row.operator("gtr.check_backend", icon="CHECKMARK")
        build = cached_detection()  # the PyTorch build Set Up Backend installs, and why
        layout.label(
            text=build.summary() if build else "Detecting the GPU...",
            icon="ERROR" if build and not build.supported else "DESKTOP",
        )
        if build is not None and build.supported and build.accelerator == "cpu":
            layout.label(text=build.reason[:1].upper() + build.reason[1:])  # why no GPU build
        if self.backend_mode == "SUBPROCESS" and build is not None and build.accelerator == "cuda":
            layout.prop(self, "build_gpu_rasterizer")
        layout.prop(self, "weights_path")
        layout.prop(self, "device")
        col = layout.column(heading="Defaults")
        col.prop(self, "refine_steps")
        col.prop(self, "mesh_resolution")
        draw_output_options(col, self)
        col.prop(self, "geometry_refine")
        sub = col.column()
        sub.enabled = self.geometry_refine
        sub.prop(self, "geometry_steps")
        col.prop(self, "texture_from_views")
        sub = col.column()
        sub.enabled = self.texture_from_views
        sub.prop(self, "texture_views")
        col.prop(self, "uv_method")
        col.prop(self, "keep_jobs")
        box = layout.box()
        box.label(text="The released GTR weights and nvdiffrast are for non-commercial use only.", icon="INFO")


def draw_output_options(layout: bpy.types.UILayout, prefs: GTR_AddonPreferences) -> None:
    """What the result is made of (the panel's Output box and the preferences): faces (a number, or as few as
    the shape allows with that number as the cap), levels of detail, texture or vertex colours, normal map."""
    row = layout.row(align=True)
    row.prop(prefs, "target_faces", text="Faces (at most)" if prefs.auto_faces else "Faces")
    row.prop(prefs, "auto_faces", toggle=True)
    layout.prop(prefs, "vertex_colors")
    sub = layout.column()
    sub.enabled = not prefs.vertex_colors
    sub.prop(prefs, "texture_size")
    sub.prop(prefs, "normal_map")
    sub.prop(prefs, "lods")


def option_values(prefs: GTR_AddonPreferences) -> dict[str, Any]:
    """Every reconstruction option of the backend's definitions (`contract.RECONSTRUCT_OPTIONS`), as these
    preferences set it: what a request sends and what the tests compare with the definitions' defaults."""
    values = {
        "refine_steps": prefs.refine_steps,
        "texture_size": texture_size(prefs),
        "target_faces": prefs.target_faces,
        "auto_faces": prefs.auto_faces,
        "lods": prefs.lods,
        "mesh_resolution": prefs.mesh_resolution or None,  # the add-on's 0: chosen by the device
        "geometry_refine": prefs.geometry_refine,
        "geometry_steps": prefs.geometry_steps,
        "texture_from_views": prefs.texture_from_views,
        "texture_views": prefs.texture_views,
        "uv": prefs.uv_method,
        "normal_map": prefs.normal_map,
        "vertex_colors": prefs.vertex_colors,
    }
    assert set(values) == set(OPTIONS), "every option of the backend's definitions has a preference"
    return values


def apply_options(prefs: GTR_AddonPreferences, values: dict[str, Any]) -> None:
    """Set the preferences from option values as `option_values` gives them (e.g. the lower settings the
    backend offers after running out of memory); names it does not know are ignored."""
    attribute = {"uv": "uv_method"}
    for name, value in values.items():
        if name not in OPTIONS:
            continue
        if name == "texture_size":
            value = str(value)
        elif name == "mesh_resolution":
            value = value or 0
        setattr(prefs, attribute.get(name, name), value)


def preferences(context: bpy.types.Context) -> GTR_AddonPreferences:
    addon = context.preferences.addons[__package__]
    return addon.preferences  # type: ignore[return-value]
