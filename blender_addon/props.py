"""Settings stored with the scene (what the user chose) and the live job status (on the window manager, so a
running or failed job never changes the scene)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .contract import contract

ENGINES = (
    ("CYCLES", "Cycles", "Path tracing on the CPU: works without a display (default)"),
    ("BLENDER_EEVEE_NEXT", "EEVEE", "Fast, needs a GPU with OpenGL"),
    ("BLENDER_WORKBENCH", "Workbench", "Flat colours from textures: fastest"),
)
VIEW_SOURCES = (
    ("ORBIT", "Images on an Orbit", "Images without cameras, taken around the object at equal steps"),
    ("CAMERAS", "Views with Cameras", "A folder with cameras.json (or the GTR release's cam_NNN.txt)"),
    ("ZERO123PP", "Zero123++ Grid", "One 3x2 grid image from Zero123++ (its fixed cameras)"),
)


class GTR_SceneSettings(bpy.types.PropertyGroup):
    views_path: StringProperty(name="Views", description="The imported views (folder, cameras.json or grid image)")  # type: ignore[valid-type]
    views_source: EnumProperty(name="Cameras", items=VIEW_SOURCES, default="ORBIT")  # type: ignore[valid-type]
    view_images: StringProperty(name="Images", description="Names of the imported images, for the thumbnails")  # type: ignore[valid-type]
    orbit_elevation: FloatProperty(name="Elevation", default=contract.ORBIT_ELEVATION_DEG, min=-89.0, max=89.0)  # type: ignore[valid-type]
    orbit_fov: FloatProperty(name="Field of View", default=contract.ORBIT_FOV_DEG, min=5.0, max=120.0)  # type: ignore[valid-type]
    orbit_distance: FloatProperty(name="Distance", default=contract.ORBIT_DISTANCE, min=0.5, max=20.0)  # type: ignore[valid-type]

    capture_elevation: FloatProperty(name="Elevation", default=contract.ORBIT_ELEVATION_DEG, min=-60.0, max=60.0)  # type: ignore[valid-type]
    capture_fov: FloatProperty(name="Field of View", default=contract.ORBIT_FOV_DEG, min=10.0, max=90.0)  # type: ignore[valid-type]
    capture_views: IntProperty(  # type: ignore[valid-type]
        name="Views",
        default=16,
        min=4,
        max=contract.MAX_FIT_VIEWS,
        description="Cameras the result is made from: the first 4 on the orbit the network knows, then above, "
        "below and two rings around; more views follow the object more closely but take longer to render",
    )
    capture_held_out: IntProperty(  # type: ignore[valid-type]
        name="Held Out",
        default=2,
        min=0,
        max=4,
        description="More cameras, kept out of the fit: the result's fidelity is also scored on these views it "
        "was not made from, an honest measure of what you get",
    )
    capture_passes: BoolProperty(  # type: ignore[valid-type]
        name="Albedo and Depth",
        default=True,
        description="Cycles and EEVEE: take the texture from the diffuse colour pass (no baked lighting) and let "
        "the shape follow the depth pass; objects without a diffuse colour keep their lit colours",
    )
    capture_engine: EnumProperty(name="Engine", items=ENGINES, default="CYCLES")  # type: ignore[valid-type]
    capture_resolution: IntProperty(name="Resolution", default=512, min=64, max=2048)  # type: ignore[valid-type]
    capture_samples: IntProperty(  # type: ignore[valid-type]
        name="Samples",
        default=1,
        min=1,
        max=4096,
        description="Cycles samples per view: the colour, depth and material passes the result is made of are "
        "exact from 1 (each pixel the surface at its centre: the sharpest texture); where the result is made of "
        "the lit render (a look with no base colour) at least 16",
    )
    capture_auto_faces: BoolProperty(  # type: ignore[valid-type]
        name="Faces: Auto",
        default=True,
        description="Simplify the result as far as its shape allows (flat sides become a few large faces, detail "
        "keeps its faces), the Faces number its cap; off: about the Faces number",
    )
    place_beside: BoolProperty(name="Place Beside Source", default=True)  # type: ignore[valid-type]
    keep_rig: BoolProperty(  # type: ignore[valid-type]
        name="Keep Camera Rig",
        default=False,
        description="Leave the capture cameras with their rendered images in the scene as the camera rig, "
        "to inspect them and to run Reconstruct or Export Views from them again",
    )

    refine_steps: IntProperty(name="Steps", default=20, min=1, max=500)  # type: ignore[valid-type]


class GTR_Status(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)  # type: ignore[valid-type]
    cancel_requested: BoolProperty(default=False)  # type: ignore[valid-type]
    stage: StringProperty(default="")  # type: ignore[valid-type]
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")  # type: ignore[valid-type]
    message: StringProperty(default="")  # type: ignore[valid-type]
    warning: StringProperty(default="", description="Why the last job's views may give a poor result")  # type: ignore[valid-type]
    backend_info: StringProperty(default="")  # type: ignore[valid-type]
    last_seconds: FloatProperty(default=0.0)  # type: ignore[valid-type]
    backend_seconds: FloatProperty(default=0.0, description="Time the backend itself took for the last job")  # type: ignore[valid-type]
    retry_options: StringProperty(default="", description="JSON: lower settings offered after running out of memory")  # type: ignore[valid-type]
    retry_operator: StringProperty(default="", description="The operator whose job ran out of memory")  # type: ignore[valid-type]


def settings(context: bpy.types.Context) -> GTR_SceneSettings:
    return context.scene.gtr  # type: ignore[no-any-return,unused-ignore]


def status(context: bpy.types.Context) -> GTR_Status:
    return context.window_manager.gtr_status  # type: ignore[no-any-return,unused-ignore]


def register_properties() -> None:
    bpy.types.Scene.gtr = bpy.props.PointerProperty(type=GTR_SceneSettings)  # type: ignore[attr-defined]
    bpy.types.WindowManager.gtr_status = bpy.props.PointerProperty(type=GTR_Status)  # type: ignore[attr-defined]


def unregister_properties() -> None:
    del bpy.types.WindowManager.gtr_status  # type: ignore[attr-defined]
    del bpy.types.Scene.gtr  # type: ignore[attr-defined]
