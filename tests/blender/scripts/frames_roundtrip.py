"""Blender <-> backend camera frames: round trips, orbit cameras, and pixel projections through both."""

import math
import random
import sys

import bpy
from bpy_extras.object_utils import world_to_camera_view
from common import addon_module, finish, install
from mathutils import Euler, Matrix, Vector

install(sys.argv[1])
frames = addon_module("frames")
random.seed(0)
errors, projections = [], []
scene = bpy.context.scene
scene.render.resolution_x = scene.render.resolution_y = 256
camera = bpy.data.objects.new("probe", bpy.data.cameras.new("probe"))
scene.collection.objects.link(camera)
camera.data.sensor_fit = "AUTO"
camera.data.angle = math.radians(40)
for _ in range(20):
    normalization = frames.Normalization(Vector([random.uniform(-5, 5) for _ in range(3)]), random.uniform(0.1, 3))
    matrix = (
        Matrix.Translation([random.uniform(-5, 5) for _ in range(3)])
        @ Euler([random.uniform(-3, 3) for _ in range(3)]).to_matrix().to_4x4()
    )
    back = frames.camera_from_backend(frames.camera_to_backend(matrix, normalization), normalization)
    errors.append(max(abs(back[i][j] - matrix[i][j]) for i in range(4) for j in range(4)))
    camera.matrix_world = matrix
    bpy.context.view_layer.update()
    forward = matrix.to_3x3() @ Vector((0, 0, -1))
    point = (
        matrix.translation
        + 3 * forward
        + matrix.to_3x3() @ Vector((random.uniform(-0.5, 0.5), random.uniform(-0.5, 0.5), 0))
    )
    ndc = world_to_camera_view(scene, camera, point)
    projections.append(
        {
            "c2w": frames.matrix_rows(frames.camera_to_backend(matrix, normalization)),
            "point": list(normalization.matrix @ point),
            "blender_pixel": [ndc.x * 256, (1 - ndc.y) * 256],
        }
    )
orbits = [
    {"azimuth": a, "elevation": e, "c2w": frames.matrix_rows(frames.orbit_camera(a, e, 2.7))}
    for a, e in [(0, 20), (90, 20), (200, -30), (300, 45)]
]
finish({"max_roundtrip_error": max(errors), "projections": projections, "orbits": orbits})
