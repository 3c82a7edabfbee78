"""Helpers for the scripts the Blender tests run in a fresh Python with `bpy` (one process per script)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import bpy

PACKAGE = "bl_ext.user_default.gtr"


def install(zip_path: str) -> None:
    """Install and enable the built extension through the extensions API, as a user would."""
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}, result
    assert PACKAGE in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())


def addon_module(name: str = ""):
    import importlib

    return importlib.import_module(f"{PACKAGE}.{name}" if name else PACKAGE)


def preferences():
    return bpy.context.preferences.addons[PACKAGE].preferences


def use_this_python_as_backend(weights: str | None = None) -> None:
    prefs = preferences()
    prefs.backend_mode = "SUBPROCESS"
    # The test environment's Python has torch and the backend's requirements (the Blender 4.2 LTS run uses
    # a Python with bpy 4.2 only, and is told where that one is).
    prefs.python_path = os.environ.get("GTR_TEST_BACKEND_PYTHON", sys.executable)
    prefs.device = "cpu"
    prefs.refine_steps = 3
    prefs.texture_size = "256"
    prefs.mesh_resolution = 48
    prefs.geometry_steps = 5
    if weights:
        prefs.weights_path = weights


def scene_snapshot() -> dict[str, object]:
    """What a failed or cancelled job must leave exactly as it was."""
    scene = bpy.context.scene
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "meshes": sorted(m.name for m in bpy.data.meshes),
        "images": sorted(i.name for i in bpy.data.images),
        "materials": sorted(m.name for m in bpy.data.materials),
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "cameras": sorted(c.name for c in bpy.data.cameras),
        "worlds": sorted(w.name for w in bpy.data.worlds),
        "node_groups": sorted(g.name for g in bpy.data.node_groups),
        "selected": sorted(o.name for o in bpy.context.selected_objects),
        "active": bpy.context.view_layer.objects.active.name if bpy.context.view_layer.objects.active else None,
        "engine": scene.render.engine,
        "resolution": [scene.render.resolution_x, scene.render.resolution_y],
        "camera": scene.camera.name if scene.camera else None,
        "filepath": scene.render.filepath,
        "world": scene.world.name if scene.world else None,
    }


def finish(result: dict[str, object]) -> None:
    print("RESULT " + json.dumps(result, default=float))
    sys.stdout.flush()


def status() -> dict[str, object]:
    s = bpy.context.window_manager.gtr_status
    return {"running": s.running, "message": s.message, "stage": s.stage, "info": s.backend_info}


def path(value: str) -> Path:
    return Path(value)


def make_test_object(name: str = "Source"):
    """An asymmetric coloured block with a bump, moved, rotated and scaled: a capture must follow all of it."""
    import bmesh

    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=1.0)
    bmesh.ops.create_uvsphere(
        bm,
        u_segments=24,
        v_segments=12,
        radius=0.35,
        matrix=__import__("mathutils").Matrix.Translation((0.0, 0.0, 0.6)),
    )
    bm.to_mesh(mesh)
    bm.free()
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = (3.0, -1.0, 0.5)
    obj.rotation_euler = (0.2, -0.3, 0.7)
    obj.scale = (1.5, 0.8, 1.0)
    material = bpy.data.materials.new(f"{name} paint")
    material.use_nodes = True
    shader = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    shader.inputs["Base Color"].default_value = (0.8, 0.25, 0.1, 1.0)
    mesh.materials.append(material)
    for other in bpy.context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    bpy.context.view_layer.update()
    return obj


def world_triangles(obj):
    """(vertices (V, 3) world, faces (F, 3)) of the evaluated object, triangulated."""
    import numpy as np

    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    mesh.calc_loop_triangles()
    vertices = np.array([obj.matrix_world @ v.co for v in mesh.vertices])
    faces = np.array([tuple(t.vertices) for t in mesh.loop_triangles])
    evaluated.to_mesh_clear()
    return vertices, faces
