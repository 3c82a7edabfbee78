"""Render Selected makes game-ready assets: a cube turned on two axes (Faces: Auto, the default), and a sphere
half gold metal, half blue plastic, with three levels of detail, exported as GLB. The user's materials are
compared before and after each capture."""

import json
import math
import sys
from pathlib import Path

import bpy
import numpy as np
from common import addon_module, finish, install, status, use_this_python_as_backend

install(sys.argv[1])
out = Path(sys.argv[2])
use_this_python_as_backend()
prefs = bpy.context.preferences.addons["bl_ext.user_default.gtr"].preferences
settings = bpy.context.scene.gtr
settings.capture_resolution = 512  # the add-on's defaults: 16 views, 2 held out, albedo and depth, Faces: Auto


def material_state(material: bpy.types.Material) -> str:
    """Everything a user would see change in a material: its nodes, their inputs' values and its links."""
    nodes = {}
    for node in material.node_tree.nodes:
        values = {}
        for socket in node.inputs:
            value = getattr(socket, "default_value", None)
            values[socket.identifier] = list(value) if hasattr(value, "__len__") else value
        nodes[node.name] = [node.bl_idname, values]
    links = sorted(
        f"{link.from_node.name}.{link.from_socket.identifier}>{link.to_node.name}.{link.to_socket.identifier}"
        for link in material.node_tree.links
    )
    return json.dumps([nodes, links], sort_keys=True, default=str)


def mesh_of(obj: bpy.types.Object) -> dict[str, list]:
    """World-space vertices and triangles of a result."""
    world = np.array([obj.matrix_world @ v.co for v in obj.data.vertices])
    faces = [list(p.vertices) for p in obj.data.polygons]
    return {"vertices": world.tolist(), "faces": faces}


def run(obj: bpy.types.Object) -> tuple[dict[str, object], list[bpy.types.Object]]:
    for other in bpy.context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    before = {slot.material.name: material_state(slot.material) for slot in obj.material_slots}
    slots = [slot.material.name for slot in obj.material_slots]
    done = bpy.ops.gtr.render_selected_to_3d()
    after = {m: material_state(bpy.data.materials[m]) for m in before}
    results = sorted((o for o in bpy.data.objects if o.get("gtr_base_name") == f"{obj.name} GTR"), key=lambda o: o.name)
    return {
        "done": sorted(done),
        "status": status(),
        "warning": bpy.context.window_manager.gtr_status.warning,
        "materials_unchanged": before == after,
        "slots_unchanged": slots == [slot.material.name for slot in obj.material_slots],
        "materials": sorted(m.name for m in bpy.data.materials),
    }, results


# A cube turned on two axes, its default grey Principled material.
bpy.ops.mesh.primitive_cube_add(size=1.0, rotation=(math.radians(30.0), math.radians(20.0), 0.0))
cube = bpy.context.active_object
cube.name = "Cube"
paint = bpy.data.materials.new("Cube paint")
paint.use_nodes = True
cube.data.materials.append(paint)
bpy.context.view_layer.update()
cube_run, cube_results = run(cube)
cube_run["result"] = mesh_of(cube_results[0]) if cube_results else None
cube_run["source_matrix"] = [list(row) for row in cube.matrix_world]
cube_run["placement"] = (
    [list(row) for row in addon_module("results").placement(cube_results[0])] if cube_results else None
)

# A sphere, half gold metal (x > 0), half blue plastic, with three levels of detail.
prefs.lods = 3
bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, segments=64, ring_count=32, location=(0.0, 6.0, 0.0))
ball = bpy.context.active_object
ball.name = "Ball"
for name, colour, metallic, roughness in (
    ("Gold", (1.0, 0.766, 0.336, 1.0), 1.0, 0.25),
    ("Blue plastic", (0.05, 0.15, 0.8, 1.0), 0.0, 0.9),
):
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    shader = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    shader.inputs["Base Color"].default_value = colour
    shader.inputs["Metallic"].default_value = metallic
    shader.inputs["Roughness"].default_value = roughness
    ball.data.materials.append(material)
for polygon in ball.data.polygons:
    polygon.material_index = 0 if polygon.center.x > 0 else 1
bpy.context.view_layer.update()
ball_run, ball_results = run(ball)
ball_run["chain"] = [(o.name, len(o.data.polygons), o.hide_get()) for o in ball_results]
ball_run["collections"] = [c.name for c in ball_results[0].users_collection] if ball_results else []
if ball_results:
    bpy.context.view_layer.objects.active = ball_results[0]
    glb = out / "ball.glb"
    ball_run["export"] = sorted(bpy.ops.gtr.export_glb(filepath=str(glb)))
    ball_run["glb"] = str(glb)
    ball_run["hidden_after_export"] = [o.hide_get() for o in ball_results]
    ball_run["centre"] = list(
        np.mean([ball_results[0].matrix_world @ v.co for v in ball_results[0].data.vertices], axis=0)
    )
    tree = ball_results[0].material_slots[0].material.node_tree
    ball_run["roughness_linked"] = tree.nodes["Principled BSDF"].inputs["Roughness"].is_linked
finish({"cube": cube_run, "ball": ball_run})
