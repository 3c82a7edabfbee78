"""Render Selected with "Keep Camera Rig" leaves its capture cameras as the rig; Reconstruct then reads that rig
as the artist left it (a camera moved) and places its result on the rig's origin.

argv: zip, scratch folder.
"""

import sys
from pathlib import Path

import bpy
from common import addon_module, finish, install, make_test_object, status, use_this_python_as_backend
from mathutils import Vector

install(sys.argv[1])
scratch = Path(sys.argv[2])
use_this_python_as_backend()
rig_module = addon_module("rig")
scene = bpy.context.scene
settings = scene.gtr
source = make_test_object()
settings.capture_resolution, settings.capture_engine = 96, "BLENDER_WORKBENCH"
settings.capture_views, settings.capture_held_out = 4, 0  # the four-view orbit: a rig of four cameras
settings.keep_rig = True
render_before = [scene.render.resolution_x, scene.render.resolution_y, scene.render.engine]
assert bpy.ops.gtr.render_selected_to_3d() == {"FINISHED"}, status()
outcome: dict[str, object] = {
    "render_unchanged": render_before == [scene.render.resolution_x, scene.render.resolution_y, scene.render.engine]
}
capture_job = Path(bpy.data.objects[f"{source.name} GTR"]["gtr_job"])
outcome["capture_job"] = str(capture_job)
rig = rig_module.find_rig(scene)
cameras = rig_module.rig_cameras(rig)
origin = rig_module.rig_origin(rig)
outcome["rig"] = {
    "collection": rig.name,
    "name": rig_module.rig_name(rig),
    "origin": [list(row) for row in origin.matrix_world],
    "cameras": [c.name for c in cameras],
    "matrix_world": [[list(row) for row in c.matrix_world] for c in cameras],
    "images": [c.data.background_images[0].image.name for c in cameras],
    "same_bytes": [
        bytes(c.data.background_images[0].image.packed_file.data)
        == (capture_job / "views" / f"{c.name}.png").read_bytes()
        for c in cameras
    ],
}
outcome["export"] = sorted(bpy.ops.gtr.export_views(directory=str(scratch / "kept")))
# The artist moves the first camera 0.1 along X (its location: in the rig origin's frame) and reconstructs.
cameras[0].location = cameras[0].location + Vector((0.1, 0.0, 0.0))
assert bpy.ops.gtr.reconstruct() == {"FINISHED"}, status()
result = bpy.data.objects[f"GTR {source.name}"]
placed = addon_module("results").placement(result)  # where the result was placed, before its origin moved
outcome["result"] = {"matrix_world": [list(row) for row in placed], "job": result["gtr_job"]}
outcome["objects"] = sorted(o.name for o in bpy.data.objects if o.name.startswith("GTR "))
finish(outcome)
