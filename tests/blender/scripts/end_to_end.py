"""Render Selected to 3D with the subprocess backend on the CPU, then Refine Texture; and Reconstruct from the
bundled example's views twice (cold and warm) for the click-to-mesh timing."""

import math
import sys
import time
from pathlib import Path

import bpy
import numpy as np
from common import addon_module, finish, install, make_test_object, status, use_this_python_as_backend

install(sys.argv[1])
example, picture = Path(sys.argv[2]), Path(sys.argv[3])
full = len(sys.argv) > 4 and sys.argv[4] == "full"  # README picture quality: the add-on's own defaults
use_this_python_as_backend()
bpy.context.preferences.addons["bl_ext.user_default.gtr"].preferences.normal_map = True
if full:
    prefs = bpy.context.preferences.addons["bl_ext.user_default.gtr"].preferences
    prefs.refine_steps, prefs.texture_size, prefs.mesh_resolution = 20, "1024", 0
source = make_test_object()
# A checker texture, so the held-out score measures a texture and not one flat colour.
paint = source.data.materials[0].node_tree
checker = paint.nodes.new("ShaderNodeTexChecker")
checker.inputs["Scale"].default_value = 3.0
checker.inputs["Color1"].default_value = (0.8, 0.25, 0.1, 1.0)
checker.inputs["Color2"].default_value = (0.1, 0.3, 0.7, 1.0)
shader = next(n for n in paint.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
paint.links.new(checker.outputs["Color"], shader.inputs["Base Color"])
bpy.ops.ed.undo_push(message="test scene")  # background mode starts with undo off; a push turns it on
source_matrix = [list(r) for r in source.matrix_world]
source_vertices = len(source.data.vertices)
settings = bpy.context.scene.gtr
settings.capture_resolution = 512 if full else 128
settings.capture_samples = 32 if full else 4
start = time.perf_counter()
assert bpy.ops.gtr.render_selected_to_3d() == {"FINISHED"}, status()
capture_seconds = time.perf_counter() - start
result = bpy.data.objects[f"{source.name} GTR"]
node = addon_module("results").texture_node(result)
mesh = result.data
corners = np.array([result.matrix_world @ v.co for v in mesh.vertices])
source_corners = np.array([source.matrix_world @ v.co for v in source.data.vertices])
tree = result.material_slots[0].material.node_tree
normal_link = next((link for link in tree.links if link.to_socket.name == "Normal"), None)
outcome = {
    "normal_map": bool(normal_link and normal_link.from_node.bl_idname == "ShaderNodeNormalMap"),
    "normal_image_colorspace": tree.nodes["GTR Normal Map"].image.colorspace_settings.name if normal_link else None,
    "capture_status": status(),
    "warning": bpy.context.window_manager.gtr_status.warning,
    "capture_total_s": capture_seconds,
    "summary": addon_module("results").summary(result),
    "held_out_psnr": result.get("gtr_fidelity_held_out_psnr"),
    "fit_psnr": result.get("gtr_fidelity_psnr"),
    "faces": len(mesh.polygons),
    "uv_layers": len(mesh.uv_layers),
    "image_packed": bool(node and node.image and node.image.packed_file),
    "image_size": list(node.image.size) if node and node.image else None,
    "result_matrix": [list(r) for r in addon_module("results").placement(result)],  # before the origin moved
    "source_matrix_before": source_matrix,
    "source_matrix_after": [list(r) for r in source.matrix_world],
    "source_vertices": [source_vertices, len(source.data.vertices)],
    "result_centre": list((corners.min(0) + corners.max(0)) / 2),
    "source_centre": list((source_corners.min(0) + source_corners.max(0)) / 2),
    "result_size": list(corners.max(0) - corners.min(0)),
    "source_size": list(source_corners.max(0) - source_corners.min(0)),
    "selected_after": sorted(o.name for o in bpy.context.selected_objects),
    "scenes": [s.name for s in bpy.data.scenes],
}
# Artist texture refinement on the result.
old_image = node.image.name
old_pixels = np.array(node.image.pixels[:])
bpy.context.view_layer.objects.active = result
bpy.context.scene.gtr.refine_steps = 5
bpy.ops.ed.undo_push(message="before refinement")
assert bpy.ops.gtr.refine_texture() == {"FINISHED"}, status()
new_pixels = np.array(node.image.pixels[:])
outcome.update(
    {
        "refine_status": status(),
        "old_image_kept": old_image in bpy.data.images,
        "texture_changed": float(np.abs(new_pixels - old_pixels).mean()),
    }
)
new_image = node.image.name
# In the UI, Blender pushes an undo step when an operator flagged UNDO finishes; scripts push it themselves.
bpy.ops.ed.undo_push(message="Refine Texture")
source_name = source.name
bpy.ops.ed.undo()  # Ctrl+Z: the texture before refinement comes back
result = bpy.data.objects[f"{source_name} GTR"]  # undo may reload any data: fetch it again by name
undone = addon_module("results").texture_node(result).image.name
bpy.ops.ed.redo()
result = bpy.data.objects[f"{source_name} GTR"]
source = bpy.data.objects[source_name]
settings = bpy.context.scene.gtr  # undo replaced the data these pointed to
outcome["undo"] = [old_image, new_image, undone, addon_module("results").texture_node(result).image.name]
# The bundled example through Import Views -> Reconstruct, twice: the first starts nothing new (the backend
# already runs) but loads nothing either; both are warm here. Timing = click to mesh in the scene.
settings.views_source = "CAMERAS"
assert bpy.ops.gtr.import_views(directory=str(example), files=[{"name": "cameras.json"}]) == {"FINISHED"}
timings = []
for _ in range(2):
    start = time.perf_counter()
    assert bpy.ops.gtr.reconstruct() == {"FINISHED"}, status()
    timings.append(
        {
            "click_to_mesh_s": time.perf_counter() - start,
            "backend_s": bpy.context.window_manager.gtr_status.backend_seconds,
        }
    )
outcome["example"] = timings
outcome["example_objects"] = sorted(o.name for o in bpy.data.objects if o.name.startswith("GTR "))
for obj in bpy.data.objects:  # the picture shows the source and its reconstruction only
    obj.hide_render = obj.type == "MESH" and obj.name not in (source.name, result.name)
scene = bpy.context.scene
sun = bpy.data.objects.new("picture sun", bpy.data.lights.new("picture sun", "SUN"))
sun.data.energy = 3.0
sun.rotation_euler = (math.radians(40), math.radians(10), math.radians(-30))
scene.collection.objects.link(sun)
scene.world = bpy.data.worlds.new("picture sky")
scene.world.use_nodes = True
scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.6
middle = (source.matrix_world.translation + result.matrix_world.translation) / 2
camera = bpy.data.objects.new("picture camera", bpy.data.cameras.new("picture camera"))
scene.collection.objects.link(camera)
camera.hide_render = False
camera.location = middle + __import__("mathutils").Vector((0.0, -7.5, 2.5))
camera.rotation_euler = (math.radians(72), 0.0, 0.0)
scene.camera = camera
scene.render.engine = "CYCLES"
scene.cycles.samples = 32 if full else 4
scene.cycles.device = "CPU"
scene.render.resolution_x, scene.render.resolution_y = (960, 480) if full else (240, 120)
scene.render.film_transparent = True
scene.render.filepath = str(picture)
bpy.ops.render.render(write_still=True)
outcome["picture"] = str(picture)
finish(outcome)
