"""The camera rig: Import Views builds it at the 3D cursor, Export Views writes it back (as it is now: a moved,
a deleted camera, a swapped image), bad targets are refused, a new import replaces it, a Zero123++ grid too.

argv: zip, a cameras.json folder (off-centre, fx != fy), a folder of orbit images, a Zero123++ grid, scratch.
"""

import sys
from pathlib import Path

import bpy
from bpy_extras.object_utils import world_to_camera_view
from common import addon_module, finish, install, use_this_python_as_backend
from mathutils import Vector

install(sys.argv[1])
views, orbit_images, grid, scratch = (Path(a) for a in sys.argv[2:6])
use_this_python_as_backend()
rig_module = addon_module("rig")
scene = bpy.context.scene
settings = scene.gtr
outcome: dict[str, object] = {}


def rig_state() -> dict[str, object]:
    """The rig as Blender has it: origin, each camera's world matrix, lens settings and background image."""
    rig = rig_module.find_rig(bpy.context.scene)  # fetched again: undo replaces the data
    bpy.context.view_layer.update()
    cameras = rig_module.rig_cameras(rig)
    origin = rig_module.rig_origin(rig)
    return {
        "collection": rig.name,
        "name": rig_module.rig_name(rig),
        "origin": [list(row) for row in origin.matrix_world],
        "cameras": [
            {
                "name": c.name,
                "matrix_world": [list(row) for row in c.matrix_world],
                "image": c.data.background_images[0].image.name,
                "image_size": list(c.data.background_images[0].image.size),
                "packed": c.data.background_images[0].image.packed_file is not None,
                "source": c["gtr_image"],
                "parent": c.parent.name,
            }
            for c in cameras
        ],
        "rigs": [c.name for c in bpy.data.collections if c.get("gtr_rig") is not None],
    }


def export(folder: Path) -> str:
    try:
        result = bpy.ops.gtr.export_views(directory=str(folder))
        return sorted(result)[0]
    except RuntimeError as error:  # an operator's ERROR report surfaces as RuntimeError in scripts
        return str(error)


# 1. A camera folder at a 3D cursor away from the origin.
scene.cursor.location = (1.5, -2.0, 0.75)
settings.views_source = "CAMERAS"
assert bpy.ops.gtr.import_views(directory=str(views), files=[{"name": "cameras.json"}]) == {"FINISHED"}
outcome["imported"] = rig_state()
outcome["render"] = [scene.render.resolution_x, scene.render.resolution_y]
outcome["pixel_aspect"] = [scene.render.pixel_aspect_x, scene.render.pixel_aspect_y]
outcome["views_path"] = settings.views_path
# Blender's own projection through each rig camera, at the render settings the import set: world points ->
# pixels (x right, y down from the top-left corner), to compare with the views' OpenCV intrinsics.
points = [Vector(p) + scene.cursor.location for p in ((0, 0, 0), (0.4, -0.3, 0.2), (-0.5, 0.2, -0.4), (0.3, 0.5, 0))]
projections = []
for camera in rig_module.rig_cameras(rig_module.find_rig(scene)):
    for point in points:
        ndc = world_to_camera_view(scene, camera, point)
        size = scene.render.resolution_x, scene.render.resolution_y
        projections.append(
            {"camera": camera.name, "point": list(point), "pixel": [ndc.x * size[0], (1 - ndc.y) * size[1]]}
        )
outcome["projections"] = projections

# 2. Export as imported; then refused: the same, now non-empty, folder.
outcome["export"] = export(scratch / "exported")
outcome["export again"] = export(scratch / "exported")
outcome["export onto a file"] = export(scratch / "exported" / "cameras.json")
outcome["export below a file"] = export(scratch / "exported" / "cameras.json" / "more")
outcome["exported files"] = sorted(p.name for p in (scratch / "exported").iterdir())

# 3. The artist moves a camera (world +X, +Z), deletes another and gives a third another image.
cameras = rig_module.rig_cameras(rig_module.find_rig(scene))
moved, deleted, swapped = cameras[0].name, cameras[1].name, cameras[2].name
cameras[0].location = cameras[0].location + Vector((0.3, 0.0, 0.2))
camera_data = cameras[1].data
bpy.data.objects.remove(cameras[1])
bpy.data.cameras.remove(camera_data)
other = bpy.data.images.load(str(views / "other.png"))
cameras[2].data.background_images[0].image = other
outcome["edited"] = {"moved": moved, "deleted": deleted, "swapped": swapped}
outcome["export edited"] = export(scratch / "edited")

# 4. A camera without an image, and an empty existing target folder (allowed).
cameras[3].data.background_images[0].image = None
outcome["no image"] = export(scratch / "no-image")
outcome["no image folder"] = (scratch / "no-image").exists()
cameras[3].data.background_images[0].image = other
(scratch / "empty").mkdir()
outcome["export to empty folder"] = export(scratch / "empty")

# 5. Orbit images replace the rig (after the new one is built); the old cameras and images go.
old_images = sorted({c["image"] for c in rig_state()["cameras"]})  # what the rig holds now
outcome["old images"] = old_images
settings.views_source = "ORBIT"
settings.orbit_elevation, settings.orbit_fov, settings.orbit_distance = 30.0, 35.0, 3.0
scene.cursor.location = (0.0, 0.0, 0.0)
names = sorted(p.name for p in orbit_images.iterdir())
bpy.ops.ed.undo_push(message="edited rig")
edited_rig = [c["name"] for c in rig_state()["cameras"]]
assert bpy.ops.gtr.import_views(directory=str(orbit_images), files=[{"name": n} for n in names]) == {"FINISHED"}
# In the UI, Blender pushes an undo step when an operator flagged UNDO finishes; scripts push it themselves.
bpy.ops.ed.undo_push(message="Import Views")
outcome["orbit"] = rig_state()
bpy.ops.ed.undo()  # Ctrl+Z: the edited rig comes back, whole
outcome["undone"] = {"before": edited_rig, "after": [c["name"] for c in rig_state()["cameras"]]}
bpy.ops.ed.redo()
scene, settings = bpy.context.scene, bpy.context.scene.gtr
outcome["redone"] = rig_state() == outcome["orbit"]
outcome["old images left"] = [name for name in old_images if name in bpy.data.images]
outcome["old cameras left"] = [o.name for o in bpy.data.objects if o.name in (moved, swapped)]
outcome["export orbit"] = export(scratch / "orbit")

# 6. A failed import (a file that is not an image) leaves the rig as it was.
(scratch / "notes.png").write_text("not an image")
before = rig_state()
try:
    bpy.ops.gtr.import_views(directory=str(scratch), files=[{"name": "notes.png"}, {"name": "x.png"}])
    outcome["failed import"] = "no error"
except RuntimeError as error:
    outcome["failed import"] = str(error)
outcome["rig kept"] = rig_state() == before

# 7. A Zero123++ grid: six cameras, one cell each.
settings.views_source = "ZERO123PP"
assert bpy.ops.gtr.import_views(filepath=str(grid)) == {"FINISHED"}
outcome["grid"] = rig_state()
outcome["export grid"] = export(scratch / "grid")
finish(outcome)
