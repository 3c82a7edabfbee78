"""Render Selected to 3D as an artist uses it, timed and scored: .venv/bin/python scripts/bench_render_selected.py

For each textured mesh file given (default: examples/evalset/*.glb) a headless Blender with the add-on installed
imports it, selects it and clicks Render Selected to 3D with the add-on's default settings (views, passes,
resolution, samples, output). The time is click to mesh in the scene, the capture included. The result (the
job's mesh, in the backend frame the capture normalised the source into) is then scored the way `gtr eval` scores
a reconstruction: against renders of the source from 20 cameras all round (elevations -30, 0, 30) for PSNR and
SSIM, Chamfer distance and volume IoU in the paper's frame; beside the fidelity the add-on shows (on the views
the result was fitted to, and on the held-out views), the result's faces, and the Chamfer distance of the
source against itself resampled (what sampling alone gives: a result cannot score below it).

With --baseline, the same object is also made the way an artist would in Blender without the add-on, and scored
the same way: a copy of the source decimated (Decimate, Collapse) to the result's face count, Smart UV Project,
and its base colour baked from the source (Cycles, Diffuse colour, selected to active) into a texture of the
result's size; timed from the copy to the baked texture.
Writes docs/results/render-selected-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("meshes", nargs="*", type=Path, help="textured mesh files (default: examples/evalset)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256, help="evaluation render size in pixels")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--samples", type=int, help="Cycles samples (default: the add-on's)")
    parser.add_argument("--views", type=int, help="capture views (default: the add-on's)")
    parser.add_argument("--baseline", action="store_true", help="also score Decimate + Smart UV + bake")
    parser.add_argument("--name", default="", help="suffix of the output file (render-selected-<device><name>)")
    args = parser.parse_args()
    meshes = args.meshes or sorted((ROOT / "examples" / "evalset").glob("*.glb"))
    home = Path(tempfile.mkdtemp(prefix="gtr-render-selected-"))
    for key, sub in (("RESOURCES", ""), ("CONFIG", "config"), ("SCRIPTS", "scripts"), ("EXTENSIONS", "extensions")):
        os.environ[f"BLENDER_USER_{key}"] = str(home / sub)
    os.environ["PYTHONPATH"] = str(ROOT)
    sys.path.insert(0, str(ROOT))
    import bpy
    import torch

    import build
    from gtr_backend.mesh import Mesh
    from gtr_backend.render import render_mesh
    from gtr_backend.render.raster import get_rasterizer
    from gtr_lab.evaluation.protocol import (
        EvalProtocol,
        image_metrics,
        load_mesh_file,
        mesh_asset,
        shape_metrics,
        view_normalization,
    )

    zip_path = build.build(home / "dist")
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons["bl_ext.user_default.gtr"].preferences
    prefs.python_path, prefs.device, prefs.keep_jobs = sys.executable, args.device, True
    rasterizer = get_rasterizer(args.device)
    protocol = EvalProtocol(size=args.size)
    rows: dict[str, dict[str, object]] = {}
    failed: dict[str, str] = {}  # object -> why Render Selected refused it
    for path in meshes:
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.ops.import_scene.gltf(filepath=str(path))
        objects = [o for o in bpy.context.scene.objects if o.type == "MESH"]
        for obj in bpy.context.scene.objects:
            obj.select_set(obj in objects)
        bpy.context.view_layer.objects.active = objects[0]
        if args.samples:
            bpy.context.scene.gtr.capture_samples = args.samples
        if args.views:
            bpy.context.scene.gtr.capture_views = args.views
        start, message = time.perf_counter(), ""
        try:
            done = bpy.ops.gtr.render_selected_to_3d()
        except RuntimeError as error:  # the operator refused (its report, raised by bpy.ops)
            done, message = set(), str(error)
        seconds = time.perf_counter() - start
        state = bpy.context.window_manager.gtr_status
        if done != {"FINISHED"}:
            failed[path.stem] = message or state.message
            print(f"{path.stem}: failed: {failed[path.stem]}")
            continue
        result = next(o for o in bpy.data.objects if o.get("gtr_job"))
        job = Path(str(result["gtr_job"]))
        truth = mesh_asset(path.stem, load_mesh_file(path), rasterizer)
        made = load_mesh_file(job / "mesh.glb")
        _, views = truth.views(protocol, torch.device(args.device))
        render = render_mesh(made.to(args.device), views.intrinsics, views.c2w, views.height, views.width, rasterizer)
        psnr, ssim, _ = image_metrics(render.rgb, views)
        assert truth.mesh is not None
        chamfer, iou, flatness = shape_metrics(made, truth.mesh, protocol)
        rows[path.stem] = {
            "seconds": seconds,
            "backend_s": state.backend_seconds,
            "psnr": psnr,
            "ssim": ssim,
            "chamfer_x100": chamfer,
            "self_chamfer_x100": shape_metrics(truth.mesh, truth.mesh, protocol)[0],
            "iou": iou,
            "flatness": flatness,
            "faces": made.num_faces,
            "fit_psnr": result.get("gtr_fidelity_psnr"),
            "held_out_psnr": result.get("gtr_fidelity_held_out_psnr"),
            "warning": state.warning,
        }
        if args.baseline:
            texture = int(result.material_slots[0].material.node_tree.nodes["GTR Base Color"].image.size[0])
            baseline, baseline_s = artist_baseline(bpy, objects, made.num_faces, texture, home / f"{path.stem}.glb")
            mesh = load_mesh_file(baseline)
            centre, scale = view_normalization(load_mesh_file(path).vertices)
            mesh = Mesh((mesh.vertices - centre) * scale, mesh.faces, mesh.uv, mesh.texture, mesh.vertex_colors)
            render = render_mesh(
                mesh.to(args.device), views.intrinsics, views.c2w, views.height, views.width, rasterizer
            )
            b_psnr, b_ssim, _ = image_metrics(render.rgb, views)
            b_chamfer, b_iou, b_flat = shape_metrics(mesh, truth.mesh, protocol)
            rows[path.stem]["artist"] = {
                "seconds": baseline_s,
                "psnr": b_psnr,
                "ssim": b_ssim,
                "chamfer_x100": b_chamfer,
                "iou": b_iou,
                "flatness": b_flat,
                "faces": mesh.num_faces,
            }
        print(
            path.stem, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[path.stem].items()})
        )
    keys = ("seconds", "psnr", "ssim", "chamfer_x100", "self_chamfer_x100", "iou", "faces", "fit_psnr", "held_out_psnr")
    mean = {k: statistics.mean(r[k] for r in rows.values() if r[k] is not None) for k in keys if rows}
    artist = [r["artist"] for r in rows.values() if "artist" in r]
    if artist:
        mean["artist"] = {
            k: statistics.mean(a[k] for a in artist) for k in ("seconds", "psnr", "ssim", "chamfer_x100", "iou")
        }
    scene = bpy.context.scene.gtr
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python scripts/bench_render_selected.py " + " ".join(sys.argv[1:]),
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"
        if args.device == "cpu"
        else args.device,
        "blender": bpy.app.version_string,
        "settings": {
            "views": scene.capture_views,
            "held_out": scene.capture_held_out,
            "passes": scene.capture_passes,
            "resolution": scene.capture_resolution,
            "engine": scene.capture_engine,
            "samples": scene.capture_samples,
            "evaluation": f"{protocol.eval_views} views at {args.size}x{args.size}, elevations -30/0/30",
        },
        "assets": rows,
        "failed": failed,
        "mean": mean,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"render-selected-{args.device}{args.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(mean, indent=2))


def artist_baseline(bpy: Any, sources: list[Any], faces: int, size: int, output: Path) -> tuple[Path, float]:
    """What an artist would do in Blender without the add-on: the sources joined into a copy, decimated to
    about `faces` faces, Smart UV Project, the sources' base colour baked onto it (Cycles, Diffuse colour,
    selected to active, a cage 1 % of the size out), exported as GLB to `output`. Returns (path, seconds from
    the copy to the baked texture)."""
    start = time.perf_counter()
    scene = bpy.context.scene
    for obj in scene.objects:
        obj.select_set(obj in sources)
    bpy.context.view_layer.objects.active = sources[0]
    bpy.ops.object.duplicate()
    if len(bpy.context.selected_objects) > 1:
        bpy.ops.object.join()
    copy = bpy.context.active_object
    bpy.ops.object.convert(target="MESH")  # modifiers applied
    bpy.ops.object.transform_apply(location=False, rotation=True, scale=True)
    triangles = sum(len(p.vertices) - 2 for p in copy.data.polygons)
    decimate = copy.modifiers.new("Decimate", "DECIMATE")
    decimate.ratio = min(1.0, faces / max(triangles, 1))
    bpy.ops.object.modifier_apply(modifier=decimate.name)
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="SELECT")
    bpy.ops.uv.smart_project(island_margin=0.003)
    bpy.ops.object.mode_set(mode="OBJECT")
    image = bpy.data.images.new("artist bake", size, size)
    material = bpy.data.materials.new("artist bake")
    material.use_nodes = True
    node = material.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = image
    material.node_tree.nodes.active = node
    shader = next(n for n in material.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    material.node_tree.links.new(node.outputs["Color"], shader.inputs["Base Color"])
    copy.data.materials.clear()
    copy.data.materials.append(material)
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.device = "CPU"
    for obj in scene.objects:
        obj.select_set(obj in sources or obj == copy)
    bpy.context.view_layer.objects.active = copy
    extent = max(copy.dimensions)
    bpy.ops.object.bake(
        type="DIFFUSE", pass_filter={"COLOR"}, use_selected_to_active=True, cage_extrusion=0.01 * extent, margin=4
    )
    seconds = time.perf_counter() - start
    for obj in scene.objects:
        obj.select_set(obj == copy)
    bpy.ops.export_scene.gltf(filepath=str(output), export_format="GLB", use_selection=True)
    return output, seconds


if __name__ == "__main__":
    main()
