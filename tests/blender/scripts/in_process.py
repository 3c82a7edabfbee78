"""The in-process backend: torch imported inside Blender's Python, the same operators and results."""

import sys
from pathlib import Path

import bpy
from common import addon_module, finish, install, preferences, status, use_this_python_as_backend

install(sys.argv[1])
use_this_python_as_backend()
preferences().backend_mode = "IN_PROCESS"
bpy.context.scene.gtr.views_source = "CAMERAS"
assert bpy.ops.gtr.import_views(directory=str(Path(sys.argv[2])), files=[{"name": "cameras.json"}]) == {"FINISHED"}
result = bpy.ops.gtr.reconstruct()
seconds = bpy.context.window_manager.gtr_status.backend_seconds  # the reply's own timing, as out of process
objects = [o for o in bpy.data.objects if o.name.startswith("GTR ")]
broken = Path(sys.argv[3]) / "broken.safetensors"
broken.write_text("not weights")
preferences().weights_path = str(broken)
try:
    failed = sorted(bpy.ops.gtr.reconstruct())
except RuntimeError:  # an operator's ERROR report surfaces as RuntimeError in scripts
    failed = ["CANCELLED"]
log = addon_module("paths").backend_log().read_text()
finish(
    {
        "result": sorted(result),
        "status": status(),
        "objects": [o.name for o in objects],
        "faces": len(objects[0].data.polygons) if objects else 0,
        "torch_in_process": "torch" in sys.modules,
        "backend_module": next((m for m in sys.modules if m.endswith("gtr_backend.server")), None),
        "seconds": seconds,
        "failed": failed,
        "log": log,
    }
)
