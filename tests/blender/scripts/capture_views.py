"""Capture 4 views of a test object with the add-on's capture code; save its world triangles for the check."""

import sys
from pathlib import Path

import numpy as np
from common import addon_module, finish, install, make_test_object, scene_snapshot, world_triangles

install(sys.argv[1])
out, engine = Path(sys.argv[2]), sys.argv[3]
capture = addon_module("capture")
source = make_test_object()
import bpy  # noqa: E402

# Not selected, just above the source and inside the cameras' view: it must not appear in the captured views.
bpy.ops.mesh.primitive_uv_sphere_add(radius=0.3, location=(3.0, -1.0, 1.6))
bystander = bpy.context.active_object
bystander.select_set(False)
source.select_set(True)
bpy.context.view_layer.objects.active = source
before = scene_snapshot()

session = capture.CaptureSession([source], capture.CaptureSettings(resolution=128, engine=engine, samples=4), out)
while session.render_next(bpy.context):
    pass
session.write_cameras()
session.close()
vertices, faces = world_triangles(source)
np.savez(out / "truth.npz", vertices=vertices, faces=faces)
finish({"unchanged": scene_snapshot() == before, "before": before, "after": scene_snapshot()})
