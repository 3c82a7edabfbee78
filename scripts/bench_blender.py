"""Time the Blender add-on: Reconstruct click -> mesh in the scene, for the bundled example, and the add-on's
overhead over the backend alone. Run with the project's Python (it has bpy): .venv/bin/python scripts/bench_blender.py

Builds the extension, installs it into a headless Blender whose user folders live in a temporary folder, sets
this Python as the backend's interpreter, imports examples/toy and clicks Reconstruct `--runs` times with the
add-on's default settings. Overhead = click-to-mesh minus the time the backend itself reports for the request
(it includes sending the request, polling, reading the mesh and texture, and building the object).
Writes docs/results/blender-<device>.json (read by `gtr report`).
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
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="gtr-blender-bench-"))
    os.environ["BLENDER_USER_RESOURCES"] = str(home)
    os.environ["PYTHONPATH"] = str(ROOT)
    sys.path.insert(0, str(ROOT))
    import build

    zip_path = build.build(home / "dist")
    import bpy

    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons["bl_ext.user_default.gtr"].preferences
    prefs.python_path, prefs.device = sys.executable, args.device
    bpy.context.scene.gtr.views_source = "CAMERAS"
    bpy.ops.gtr.import_views(directory=str(ROOT / "examples" / "toy"), files=[{"name": "cameras.json"}])
    runs = []
    for _ in range(args.runs):
        start = time.perf_counter()
        assert bpy.ops.gtr.reconstruct() == {"FINISHED"}, bpy.context.window_manager.gtr_status.message
        total = time.perf_counter() - start
        backend = bpy.context.window_manager.gtr_status.backend_seconds
        runs.append({"click_to_mesh_s": total, "backend_s": backend, "overhead_s": total - backend})
        print(f"click to mesh {total:.2f} s, backend {backend:.2f} s, add-on overhead {total - backend:.3f} s")
    result_obj = next(o for o in bpy.data.objects if o.name.startswith("GTR "))
    warm = runs[1:] or runs
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python scripts/bench_blender.py " + " ".join(sys.argv[1:]),
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores" if args.device == "cpu" else args.device,
        "blender": bpy.app.version_string,
        "settings": {
            "refine_steps": prefs.refine_steps,
            "texture_size": prefs.texture_size,
            "mesh_resolution": prefs.mesh_resolution or "default (128 on the CPU)",
        },
        "faces": len(result_obj.data.polygons),
        "runs": runs,
        "first_click_s": runs[0]["click_to_mesh_s"],
        "warm_median_click_s": statistics.median(r["click_to_mesh_s"] for r in warm),
        "warm_median_overhead_s": statistics.median(r["overhead_s"] for r in warm),
        "max_overhead_s": max(r["overhead_s"] for r in runs),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"blender-{args.device}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({k: v for k, v in info.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
