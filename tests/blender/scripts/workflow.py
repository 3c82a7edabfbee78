"""The artist workflow on a result: versions with a fidelity score in "GTR Results", origin at the base, Export
GLB, Bake to Active into a hand-unwrapped cube's own UVs, creases and vertex colours on import, and a retry
with lower settings after the backend runs out of memory."""

import json
import os
import sys
from pathlib import Path

import bpy
import numpy as np
from common import addon_module, finish, install, preferences, status, use_this_python_as_backend
from mathutils import Matrix, Vector

install(sys.argv[1])
scratch = Path(sys.argv[2])
use_this_python_as_backend()
prefs = preferences()
prefs.target_faces = 4000
results = addon_module("results")
outcome = {}

# A cube with a different colour on every face, and Blender's own hand-made unwrap (a cross).
for obj in list(bpy.data.objects):  # the default scene's cube, camera and light
    bpy.data.objects.remove(obj)
bpy.ops.mesh.primitive_cube_add(size=1.0, location=(2.0, 1.0, 0.6), rotation=(0.0, 0.0, 0.5))
cube = bpy.context.active_object
cube.name = "Cube"
COLOURS = [(0.9, 0.1, 0.1), (0.1, 0.8, 0.1), (0.1, 0.2, 0.9), (0.9, 0.9, 0.1), (0.1, 0.9, 0.9), (0.9, 0.2, 0.9)]
for i, colour in enumerate(COLOURS):
    material = bpy.data.materials.new(f"face {i}")
    material.use_nodes = True
    shader = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    shader.inputs["Base Color"].default_value = (*colour, 1.0)
    cube.data.materials.append(material)
for polygon in cube.data.polygons:
    polygon.material_index = polygon.index
bpy.ops.ed.undo_push(message="test scene")
settings = bpy.context.scene.gtr
full = len(sys.argv) > 4 and sys.argv[4] == "full"  # the README picture: the add-on's own capture settings
if not full:
    settings.capture_resolution, settings.capture_samples = 128, 4
settings.place_beside = False
assert bpy.ops.gtr.render_selected_to_3d() == {"FINISHED"}, status()
result = bpy.data.objects["Cube GTR"]
local = np.array([v.co for v in result.data.vertices])
world = np.array([result.matrix_world @ v.co for v in result.data.vertices])
outcome["first"] = {
    "collection": [c.name for c in result.users_collection],
    "version": result.get("gtr_version"),
    "summary": results.summary(result),
    "mask_iou": result.get("gtr_fidelity_mask_iou"),
    "psnr": result.get("gtr_fidelity_psnr"),
    "settings": json.loads(result["gtr_settings"]),
    "weights": result["gtr_weights"],
    "local_low": local.min(0).tolist(),
    "local_high": local.max(0).tolist(),
    "world_centre": ((world.min(0) + world.max(0)) / 2).tolist(),
    "cube_centre": list(cube.matrix_world.translation),
    "faces": len(result.data.polygons),
}

# Export GLB: the result as it is in the scene; a folder that does not exist writes nothing.
bpy.context.view_layer.objects.active = result
glb = scratch / "cube.glb"
assert bpy.ops.gtr.export_glb(filepath=str(glb)) == {"FINISHED"}
import trimesh  # noqa: E402 - the test environment's Python (Blender 5.0 runs in it) has trimesh

scene = trimesh.load(str(glb))
exported = np.concatenate([g.vertices for g in scene.dump()]) if hasattr(scene, "dump") else scene.vertices
try:
    missing, missing_message = bpy.ops.gtr.export_glb(filepath=str(scratch / "no such folder" / "x.glb")), ""
except RuntimeError as error:  # an operator's ERROR report surfaces as RuntimeError in scripts
    missing, missing_message = {"CANCELLED"}, str(error)
outcome["export"] = {
    # glTF is Y up: Blender's (x, y, z) is glTF's (x, z, -y).
    "low": exported.min(0).tolist(),
    "high": exported.max(0).tolist(),
    "expected_low": [world[:, 0].min(), world[:, 2].min(), -world[:, 1].max()],
    "expected_high": [world[:, 0].max(), world[:, 2].max(), -world[:, 1].min()],
    "missing_folder": sorted(missing),
    "missing_message": missing_message,
    "files": sorted(p.name for p in scratch.iterdir() if p.suffix == ".glb" or p.name.startswith(".")),
}


def sample(image, uv):
    """RGB of `image` at uv (nearest texel; Blender's pixels start at the bottom-left)."""
    width, height = image.size
    pixels = np.array(image.pixels[:]).reshape(height, width, -1)
    x = min(width - 1, int(uv[0] * width))
    y = min(height - 1, int(uv[1] * height))
    return pixels[y, x, :3]


# Bake to Active: a copy of the cube (its own UVs, untouched) gets the result's colours at the right places.
target = cube.copy()
target.data = cube.data.copy()
target.name = "Cube copy"
bpy.context.scene.collection.objects.link(target)
uv_before = np.array([d.uv[:] for d in target.data.uv_layers.active.data])
vertices_before = np.array([v.co[:] for v in target.data.vertices])
for other in bpy.context.selected_objects:
    other.select_set(False)
result.select_set(True)
target.select_set(True)
bpy.context.view_layer.objects.active = target
# Not where the result is (moved aside): refused in words, nothing changes.
result.location.x += 5.0
try:
    apart = sorted(bpy.ops.gtr.bake_to_active())
except RuntimeError:
    apart = ["CANCELLED"]
apart_message = bpy.context.window_manager.gtr_status.message
result.location.x -= 5.0


def bake_refused() -> str:
    """What Bake to Active says when it cannot run: its disabled button's tooltip, or its error."""
    try:
        bpy.ops.gtr.bake_to_active()
    except RuntimeError as error:  # a failed poll and an ERROR report both surface as RuntimeError in scripts
        return f"{error} | {bpy.context.window_manager.gtr_status.message}"
    return "ran"


# Disabled, the button says why: no GTR result selected besides the target.
result.select_set(False)
outcome["no source"] = bake_refused()
result.select_set(True)
# A mesh with a UV map but no faces: refused in words (nothing to bake onto).
points = bpy.data.meshes.new("Loose points")
points.from_pydata([(2.0, 1.0, 0.6), (2.1, 1.0, 0.6), (2.0, 1.1, 0.6)], [], [])
points.uv_layers.new()
loose = bpy.data.objects.new("Loose points", points)
bpy.context.scene.collection.objects.link(loose)
loose.select_set(True)
bpy.context.view_layer.objects.active = loose
outcome["no faces"] = bake_refused()
loose.select_set(False)
bpy.context.view_layer.objects.active = target
target.active_material_index = 2  # the bake goes into this slot only
slots_before = [slot.material.name for slot in target.material_slots]
bpy.ops.ed.undo_push(message="before bake")
assert bpy.ops.gtr.bake_to_active() == {"FINISHED"}, status()
baked = target.active_material.node_tree.nodes["Image Texture"].image
source_image = results.texture_node(result).image
result_uv = result.data.uv_layers.active.data
rotation = result.matrix_world.to_3x3()
centres = np.array([result.matrix_world @ p.center for p in result.data.polygons])
normals = np.array([(rotation @ p.normal).normalized() for p in result.data.polygons])
faces = []
for polygon in target.data.polygons:
    normal = (target.matrix_world.to_3x3() @ polygon.normal).normalized()
    if normal.z < -0.5:
        continue  # the bottom is never seen from the capture's cameras (elevation 20 degrees)
    # Baked: the mean over points of the face's UV quad, from its centre halfway to its corners.
    corners_uv = np.array([target.data.uv_layers.active.data[i].uv[:] for i in polygon.loop_indices])
    middle = corners_uv.mean(axis=0)
    points = [middle + s * (c - middle) for c in corners_uv for s in (0.0, 0.25, 0.5)]
    seen = np.mean([sample(baked, p) for p in points], axis=0)
    # Expected: the mean of the result's own texture over its faces near this face's centre, facing its way.
    centre = np.array(target.matrix_world @ polygon.center)
    near = np.nonzero((np.linalg.norm(centres - centre, axis=1) < 0.3) & (normals @ np.array(normal) > 0.7))[0]
    expected = np.mean(
        [
            sample(source_image, np.mean([result_uv[i].uv[:] for i in result.data.polygons[k].loop_indices], axis=0))
            for k in near
        ],
        axis=0,
    )
    faces.append({"baked": seen.tolist(), "expected": expected.tolist(), "normal": list(normal), "near": len(near)})
outcome["bake"] = {
    "faces": faces,
    "image": baked.name,
    "packed": bool(baked.packed_file),
    "uv_unchanged": bool(np.array_equal(uv_before, [d.uv[:] for d in target.data.uv_layers.active.data])),
    "vertices_unchanged": bool(np.array_equal(vertices_before, [v.co[:] for v in target.data.vertices])),
    "material": target.active_material.name,
    "slots": [slot.material.name for slot in target.material_slots],
    "slots_before": slots_before,
    "apart": apart,
    "apart_message": apart_message,
}
bpy.ops.ed.undo_push(message="Bake to Active")
bpy.ops.ed.undo()
target = bpy.data.objects["Cube copy"]
outcome["bake"]["undone_material"] = target.active_material.name
outcome["bake"]["undone_slots"] = [slot.material.name for slot in target.material_slots]
outcome["bake"]["image_after_undo"] = outcome["bake"]["image"] in bpy.data.images

# Out of memory, faked in the backend process: its reconstruction's first stage raises CUDA's out-of-memory
# error. The error names lower settings; Retry with Lower Settings sets them; the job then runs with them.
fault = scratch / "fault"
fault.mkdir()
(fault / "sitecustomize.py").write_text(
    "import torch\n"
    "import gtr_backend.reconstruction as r\n"
    "def reconstruct(views, weights, device='auto', options=None, progress=None, cancel=None):\n"
    "    stages = r.Stages.planned(r.resolve_device(device), options, progress, cancel)\n"
    "    with stages.stage('carve'):\n"
    "        raise torch.cuda.OutOfMemoryError('CUDA out of memory (simulated)')\n"
    "r.reconstruct = reconstruct\n"
)
backend = addon_module("backend")
backend.shutdown_all()  # the next request starts a backend with the fault
path = os.environ.get("PYTHONPATH", "")
os.environ["PYTHONPATH"] = f"{fault}{os.pathsep}{path}"
prefs.mesh_resolution, prefs.texture_size = 64, "512"
for other in bpy.context.selected_objects:
    other.select_set(False)
cube = bpy.data.objects["Cube"]
cube.select_set(True)
bpy.context.view_layer.objects.active = cube
try:
    failed = sorted(bpy.ops.gtr.render_selected_to_3d())
except RuntimeError:
    failed = ["CANCELLED"]
state = bpy.context.window_manager.gtr_status
outcome["oom"] = {"result": failed, "message": state.message, "retry": json.loads(state.retry_options or "{}")}
backend.shutdown_all()
os.environ["PYTHONPATH"] = path
assert bpy.ops.gtr.retry_lower() == {"FINISHED"}, status()  # sets the lower settings (the UI reruns the job)
assert bpy.ops.gtr.render_selected_to_3d() == {"FINISHED"}, status()
second = bpy.data.objects.get("Cube GTR v2")
outcome["retry"] = {
    "prefs": [prefs.mesh_resolution, prefs.texture_size, prefs.target_faces],
    "objects": sorted(o.name for o in bpy.data.collections["GTR Results"].objects),
    "version": second.get("gtr_version") if second else None,
    "settings": json.loads(second["gtr_settings"]) if second else None,
    "retry_cleared": state.retry_options == "",
}

# Creases and vertex colours on import, from job folders made here: a cube's 12 edges are sharp, its
# diagonals smooth; a vertex-coloured job gets a colour attribute and a Color Attribute node, no UVs.
corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)], dtype=np.float32)
quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
triangles = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))], dtype=np.int32)
cases = {
    "textured": ({"uv": corners[:, :2] + 0.5}, Matrix()),
    "painted": ({"colors": corners + 0.5}, Matrix()),
    "mirrored": ({"uv": corners[:, :2] + 0.5}, Matrix.Diagonal((-1.0, 1.0, 1.0, 1.0))),  # a negative scale
}
for name, (colour, to_local) in cases.items():
    job = scratch / name
    job.mkdir()
    np.savez(job / "mesh.npz", vertices=corners, faces=triangles, **colour)
    if "uv" in colour:
        from PIL import Image

        Image.new("RGB", (8, 8), (200, 100, 50)).save(job / "texture.png")
    obj = results.add_result(bpy.context, job, f"Made {name}", Matrix(), to_local)
    mesh = obj.data
    sharp = mesh.attributes.get("sharp_edge")
    flags = [bool(v.value) for v in sharp.data] if sharp else [False] * len(mesh.edges)
    nodes = obj.active_material.node_tree.nodes
    middle = sum((v.co for v in mesh.vertices), Vector()) / len(mesh.vertices)
    outcome[name] = {
        "edges": len(mesh.edges),
        "sharp": sum(flags),
        "smooth_faces": sum(p.use_smooth for p in mesh.polygons),
        "uv_layers": len(mesh.uv_layers),
        "color_attributes": [a.name for a in mesh.color_attributes],
        "base_node": nodes["GTR Base Color"].bl_idname,
        "origin_low_z": min((obj.matrix_world @ v.co).z for v in mesh.vertices),
        "origin": list(obj.matrix_world.translation),
        # each vertex's colour against its world position (the painted job's colours are position + 0.5)
        # every face corner's uv is its vertex's uv in the job (vertices keep their order: they are sorted)
        "uv_error": float(
            max(
                np.abs(np.array(mesh.uv_layers[0].data[loop.index].uv[:]) - colour["uv"][loop.vertex_index]).max()
                for loop in mesh.loops
            )
        )
        if "uv" in colour
        else None,
        "normals_out": sum(  # facing away from the cube's centre
            (obj.matrix_world.to_3x3() @ p.normal).dot(obj.matrix_world.to_3x3() @ (p.center - middle)) > 0
            for p in mesh.polygons
        ),
        "colour_error": float(
            max(
                np.abs(np.array(a.color[:3]) - (np.array(obj.matrix_world @ v.co) + 0.5)).max()
                for a, v in zip(mesh.color_attributes[0].data, mesh.vertices, strict=True)
            )
        )
        if mesh.color_attributes
        else None,
    }
outcome["crease_deg"] = results.CREASE_DEG
# Unload Model: the running backend drops its model; with no backend running, none is started to say so.
assert bpy.ops.gtr.unload_model() == {"FINISHED"}, status()
outcome["unloaded"] = bpy.context.window_manager.gtr_status.backend_info
addon_module("backend").shutdown_all()
assert bpy.ops.gtr.unload_model() == {"FINISHED"}, status()
outcome["unloaded_idle"] = bpy.context.window_manager.gtr_status.backend_info
outcome["started_by_unload"] = any(b.running() for b in addon_module("backend.client")._BACKENDS.values())

# The README's picture: the cube (left), its reconstruction (middle), the cube copy with the reconstruction's
# colours baked into its own UVs (right).
picture = Path(sys.argv[3])
shown = {"Cube": -1.6, "Cube GTR": 0.0, "Cube copy": 1.6}
for obj in bpy.data.objects:
    obj.hide_render = obj.name not in shown
    if obj.name in shown:
        obj.location.x += shown[obj.name] - (obj.matrix_world @ Vector()).x
        obj.location.y = 0.0
scene = bpy.context.scene
sun = bpy.data.objects.new("picture sun", bpy.data.lights.new("picture sun", "SUN"))
sun.data.energy = 3.0
sun.rotation_euler = (0.7, 0.2, -0.5)
scene.collection.objects.link(sun)
scene.world = bpy.data.worlds.new("picture sky")
scene.world.use_nodes = True
scene.world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.7
camera = bpy.data.objects.new("picture camera", bpy.data.cameras.new("picture camera"))
scene.collection.objects.link(camera)
camera.location, camera.rotation_euler = (0.0, -7.0, 2.6), (1.293, 0.0, 0.0)  # looking at z = 0.6
scene.camera = camera
scene.render.engine, scene.cycles.samples, scene.cycles.device = "CYCLES", 32 if full else 4, "CPU"
scene.render.resolution_x, scene.render.resolution_y = (960, 400) if full else (240, 100)
scene.render.film_transparent = True
scene.render.filepath = str(picture)
bpy.ops.render.render(write_still=True)
finish(outcome)
