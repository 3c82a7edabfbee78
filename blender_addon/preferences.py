"""Add-on preferences: where the backend runs and the defaults of every reconstruction."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

BACKEND_MODES = (
    ("SUBPROCESS", "Separate Python", "Run gtr_backend in a Python environment of its own (set up below)"),
    ("IN_PROCESS", "Inside Blender", "Import torch inside Blender's own Python (only if torch is installed there)"),
)
DEVICES = (
    ("auto", "Automatic", "The GPU when PyTorch sees one, else the CPU"),
    ("cuda", "GPU (CUDA)", "An NVIDIA GPU through CUDA"),
    ("cpu", "CPU", "The processor: slower, works everywhere"),
)


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
    device: EnumProperty(name="Device", items=DEVICES, default="auto")  # type: ignore[valid-type]
    refine_steps: IntProperty(name="Refinement Steps", default=20, min=0, max=500)  # type: ignore[valid-type]
    texture_size: IntProperty(name="Texture Size", default=1024, min=64, max=4096)  # type: ignore[valid-type]
    mesh_resolution: IntProperty(  # type: ignore[valid-type]
        name="Mesh Resolution",
        default=0,
        min=0,
        max=512,
        description="Marching-cubes grid (0: 256 on a GPU, 128 on the CPU)",
    )
    geometry_refine: BoolProperty(  # type: ignore[valid-type]
        name="Fit Geometry to Views",
        default=True,
        description="Make the mesh agree with every input view: carve it to the silhouettes, add thin parts the "
        "network missed, then fit the surface to the views' outlines and colours",
    )
    geometry_steps: IntProperty(  # type: ignore[valid-type]
        name="Geometry Steps",
        default=20,
        min=0,
        max=200,
        description="Steps of the surface fit after carving (0: carve and fill only)",
    )
    texture_from_views: BoolProperty(  # type: ignore[valid-type]
        name="Texture from Views",
        default=True,
        description="Take the texture's colours straight from the input views where they see the surface "
        "(sharp print and patterns); the refined colour field fills what no view sees",
    )
    normal_map: BoolProperty(  # type: ignore[valid-type]
        name="Normal Map",
        default=False,
        description="Bake the full-resolution surface's detail into a normal map on the simplified mesh",
    )
    uv_method: EnumProperty(  # type: ignore[valid-type]
        name="UV Layout",
        items=(
            ("fast", "Fast", "Charts projected from the mesh's own shape: a fraction of a second, no overlaps"),
            ("xatlas", "xatlas", "The tightest packing (more texels per face), seconds slower"),
        ),
        default="fast",
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
        row.operator("gtr.check_backend", icon="CHECKMARK")
        layout.prop(self, "weights_path")
        layout.prop(self, "device")
        col = layout.column(heading="Defaults")
        col.prop(self, "refine_steps")
        col.prop(self, "texture_size")
        col.prop(self, "mesh_resolution")
        col.prop(self, "geometry_refine")
        sub = col.column()
        sub.enabled = self.geometry_refine
        sub.prop(self, "geometry_steps")
        col.prop(self, "texture_from_views")
        col.prop(self, "uv_method")
        col.prop(self, "normal_map")
        col.prop(self, "keep_jobs")
        box = layout.box()
        box.label(text="The released GTR weights and nvdiffrast are for non-commercial use only.", icon="INFO")


def preferences(context: bpy.types.Context) -> GTR_AddonPreferences:
    addon = context.preferences.addons[__package__]
    return addon.preferences  # type: ignore[return-value]
