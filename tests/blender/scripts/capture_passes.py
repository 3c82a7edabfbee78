"""Capture with the albedo and depth passes: a shaded sphere's diffuse colour, an emission-only object's lit
colour, every view's depth, the held-out views; the user's scene as before."""

import json
import sys
from pathlib import Path

import bpy
import numpy as np
from common import addon_module, finish, install, make_test_object, scene_snapshot

install(sys.argv[1])
out, engine = Path(sys.argv[2]), sys.argv[3]
capture = addon_module("capture")
colour = (0.2, 0.55, 0.3)
bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, location=(0.0, 0.0, 0.0), segments=48, ring_count=24)
sphere = bpy.context.active_object
material = bpy.data.materials.new("glossy green")
material.use_nodes = True
shader = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
shader.inputs["Base Color"].default_value = (*colour, 1.0)
shader.inputs["Roughness"].default_value = 0.15  # highlights the lit render shows and the albedo must not
sphere.data.materials.append(material)
changes = []
settings = capture.CaptureSettings(views=6, held_out=2, resolution=96, engine=engine, passes=True)  # 1 sample
samples = {}  # Cycles samples each capture rendered with


def run(objects, folder):
    before = scene_snapshot()
    session = capture.CaptureSession(objects, settings, folder)
    try:
        while session.render_next(bpy.context):
            pass
        session.write_cameras()
        if engine == "CYCLES":
            samples[folder.name] = int(session.scene.cycles.samples)
    finally:
        session.close()
    if scene_snapshot() != before:
        changes.append([before, scene_snapshot()])
    return session


session = run([sphere], out / "sphere")
cameras = json.loads((out / "sphere" / "cameras.json").read_text())["views"]
first = capture.read_png(out / "sphere" / cameras[0]["image"])
lit = capture.read_png(out / "sphere" / (Path(cameras[0]["image"]).stem + "_lit.png"))
inside = first[..., 3] > 0.99
depths = [np.load(out / "sphere" / view["depth"]) for view in cameras]
# Points the depth maps see, back in the backend frame: they must lie on the sphere (radius VIEW_RADIUS there).
radii = []
for view, depth in zip(cameras, depths, strict=True):
    ys, xs = np.nonzero(depth > 0)
    z = depth[ys, xs]
    rays = np.stack([(xs + 0.5 - view["cx"]) / view["fx"], (ys + 0.5 - view["cy"]) / view["fy"], np.ones_like(z)], 1)
    matrix = np.array(view["matrix"])
    points = (rays * z[:, None]) @ matrix[:3, :3].T + matrix[:3, 3]
    radii.append(np.linalg.norm(points, axis=1))
radii = np.concatenate(radii)

# An emission-only object: no diffuse colour to split out, so its views keep the lit colour, and it says so.
glow = make_test_object("Glow")
glow_material = bpy.data.materials.new("glow")
glow_material.use_nodes = True
nodes = glow_material.node_tree.nodes
for node in list(nodes):
    if node.bl_idname != "ShaderNodeOutputMaterial":
        nodes.remove(node)
emission = nodes.new("ShaderNodeEmission")
emission.inputs["Color"].default_value = (0.9, 0.6, 0.1, 1.0)
glow_material.node_tree.links.new(emission.outputs[0], nodes["Material Output"].inputs["Surface"])
glow.data.materials.clear()
glow.data.materials.append(glow_material)
glowing = run([glow], out / "glow")
glow_views = json.loads((out / "glow" / "cameras.json").read_text())["views"]
glow_first = capture.read_png(out / "glow" / glow_views[0]["image"])
bpy.data.objects.remove(glow)
finish(
    {
        "views": len(cameras),
        "held_out": [bool(view.get("held_out")) for view in cameras],
        "albedo_mean": first[inside][:, :3].mean(0).tolist(),
        "albedo_spread": float(first[inside][:, :3].std(0).max()),
        "lit_mean": lit[inside][:, :3].mean(0).tolist(),
        "lit_spread": float(lit[inside][:, :3].std(0).max()),
        "expected": capture.linear_to_srgb(np.array(colour)).tolist(),
        "depth_known": float(np.mean([(d > 0).mean() for d in depths])),
        "radius": [float(radii.min()), float(radii.max())],
        "sphere_note": session.note,
        "glow_note": glowing.note,
        "glow_lit_kept": float(glow_first[glow_first[..., 3] > 0.99][:, :3].mean()),
        "glow_files": sorted(p.name for p in (out / "glow").iterdir()),
        "changes": changes,
        "samples": samples,
        "lit_samples": capture.LIT_SAMPLES,
    }
)
