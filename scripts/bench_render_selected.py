"""Render Selected to 3D as an artist uses it, timed and scored: .venv/bin/python scripts/bench_render_selected.py

For each textured mesh file given (default: examples/evalset/*.glb) a headless Blender with the add-on installed
imports it, selects it and clicks Render Selected to 3D with the add-on's default settings (views, passes,
resolution, samples, output). The time is click to mesh in the scene, the capture included. The result (the
job's mesh, in the backend frame the capture normalised the source into) is then scored the way `gtr eval` scores
a reconstruction: against renders of the source from 20 cameras all round (elevations -30, 0, 30) for PSNR and
SSIM, Chamfer distance and volume IoU in the paper's frame; beside the fidelity the add-on shows (on the views
the result was fitted to, and on the held-out views). Writes docs/results/render-selected-<device>.json.
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

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("meshes", nargs="*", type=Path, help="textured mesh files (default: examples/evalset)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256, help="evaluation render size in pixels")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--samples", type=int, help="Cycles samples (default: the add-on's)")
    parser.add_argument("--views", type=int, help="capture views (default: the add-on's)")
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
    from gtr_backend.render import render_mesh
    from gtr_backend.render.raster import get_rasterizer
    from gtr_lab.evaluation.protocol import EvalProtocol, image_metrics, load_mesh_file, mesh_asset, shape_metrics

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
            "iou": iou,
            "flatness": flatness,
            "fit_psnr": result.get("gtr_fidelity_psnr"),
            "held_out_psnr": result.get("gtr_fidelity_held_out_psnr"),
            "warning": state.warning,
        }
        print(
            path.stem, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in rows[path.stem].items()})
        )
    keys = ("seconds", "psnr", "ssim", "chamfer_x100", "iou", "fit_psnr", "held_out_psnr")
    mean = {k: statistics.mean(r[k] for r in rows.values() if r[k] is not None) for k in keys if rows}
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
    (args.output / f"render-selected-{args.device}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(mean, indent=2))


if __name__ == "__main__":
    main()
