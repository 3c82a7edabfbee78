"""Capture awkward selections with the add-on's capture code and measure each rendered view's mask: how far
it is from the border and how much of the frame the object spans. Prints one record per case."""

import math
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np
from common import addon_module, finish, install

install(sys.argv[1])
capture = addon_module("capture")


def clear() -> None:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)


def cube(name: str, size: float = 2.0, location=(0.0, 0.0, 0.0)):
    bpy.ops.mesh.primitive_cube_add(size=size, location=location)
    obj = bpy.context.active_object
    obj.name = name
    return obj


def default_cube():
    return [cube("Cube")]


def rod():
    obj = cube("Rod")
    obj.scale = (5.0, 0.5, 0.5)  # 10:1
    obj.rotation_euler = (0.0, 0.0, math.radians(30))
    return [obj]


def plate(turn_deg: float):
    """An upright 2 m plate, 2 cm thick, turned `turn_deg` from edge-on to the azimuth-0 and -180 cameras."""

    def make():
        obj = cube("Plate")
        obj.scale = (1.0, 1.0, 0.01)
        obj.rotation_euler = (math.radians(90), 0.0, math.radians(turn_deg))
        return [obj]

    return make


def far_apart():
    return [cube("Left", location=(-3.0, 0.0, 0.0)), cube("Right", location=(3.0, 1.0, 0.5))]


def parented():
    parent = bpy.data.objects.new("Parent", None)
    bpy.context.scene.collection.objects.link(parent)
    parent.location = (5.0, -2.0, 1.0)
    parent.rotation_euler = (0.3, 0.2, 1.1)
    parent.scale = (2.0, 2.0, 2.0)
    child = cube("Child", size=1.0)
    child.parent = parent
    child.location = (1.0, 0.5, 0.0)
    child.rotation_euler = (0.0, 0.7, 0.0)
    child.scale = (0.5, 1.5, 1.0)
    return [child]


def arrayed():
    obj = cube("Arrayed", size=1.0)
    modifier = obj.modifiers.new("Array", "ARRAY")
    modifier.count = 4  # the evaluated mesh is four times longer than the object's own mesh
    return [obj]


def vertex_instances():
    """A mesh of four points that instances a cube at each (Blender's vertex instancing): the cubes reach past
    the points, and only the instances render."""
    mesh = bpy.data.meshes.new("Points")
    mesh.from_pydata([(-3.0, -3.0, 0.0), (3.0, -3.0, 0.0), (3.0, 3.0, 0.0), (-3.0, 3.0, 1.0)], [], [])
    points = bpy.data.objects.new("Points", mesh)
    bpy.context.scene.collection.objects.link(points)
    child = cube("Instanced", size=1.5)
    child.parent = points
    points.instance_type = "VERTS"
    return [points]


def sign_post():
    """A 2 m post, 8 cm thick, with a 1 m plate 4 cm thick near its top: seen from straight above, a speck and a
    line, yet every other view shows it well."""
    post = cube("Post")
    post.scale = (0.04, 0.04, 1.0)
    board = cube("Plate", location=(0.0, 0.0, 0.6))
    board.scale = (0.5, 0.02, 0.3)
    return [post, board]


CASES = {
    "default cube": default_cube,
    "10:1 rod": rod,
    "plate nearly edge-on": plate(10.0),
    "plate exactly edge-on": plate(0.0),
    "two far-apart objects": far_apart,
    "parented, rotated, scaled": parented,
    "array modifier": arrayed,
    "vertex instances": vertex_instances,
    "sign post, from above and below too": sign_post,
}
SETTINGS = {"sign post, from above and below too": {"views": 6, "resolution": 256}}  # others: 4 views, 96 px
records = []
for name, make in CASES.items():
    clear()
    objects = make()
    bpy.context.view_layer.update()
    folder = Path(tempfile.mkdtemp()) / "views"
    chosen = {"resolution": 96, **SETTINGS.get(name, {})}
    settings = capture.CaptureSettings(engine="BLENDER_WORKBENCH", fov=float(sys.argv[2]), **chosen)
    session = capture.CaptureSession(objects, settings, folder)
    try:
        while session.render_next(bpy.context):
            pass
        error = None
    except capture.CaptureError as failure:
        error = str(failure)
    finally:
        session.close()
    views = []
    for path in sorted(folder.glob("view_*.png")):
        image = bpy.data.images.load(str(path))
        size = image.size[0]
        pixels = np.empty(size * size * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        bpy.data.images.remove(image)
        mask = pixels[3::4].reshape(size, size) > 0.5
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        margin = min(rows[0], cols[0], size - 1 - rows[-1], size - 1 - cols[-1]) if mask.any() else -1
        span = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / size if mask.any() else 0.0
        views.append({"margin_px": int(margin), "span": float(span), "coverage": float(mask.mean())})
    records.append({"case": name, "error": error, "views": views, "min_coverage": capture.MIN_COVERAGE})
finish({"cases": records})
