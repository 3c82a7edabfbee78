"""The in-process backend: torch imported inside Blender's Python, the same operators and results."""

import sys
from pathlib import Path

import bpy
from common import finish, install, preferences, status, use_this_python_as_backend

install(sys.argv[1])
use_this_python_as_backend()
preferences().backend_mode = "IN_PROCESS"
bpy.context.scene.gtr.views_source = "CAMERAS"
assert bpy.ops.gtr.import_views(directory=str(Path(sys.argv[2])), files=[{"name": "cameras.json"}]) == {"FINISHED"}
result = bpy.ops.gtr.reconstruct()
objects = [o for o in bpy.data.objects if o.name.startswith("GTR ")]
finish(
    {
        "result": sorted(result),
        "status": status(),
        "objects": [o.name for o in objects],
        "faces": len(objects[0].data.polygons) if objects else 0,
        "torch_in_process": "torch" in sys.modules,
        "backend_module": next((m for m in sys.modules if m.endswith("gtr_backend.server")), None),
    }
)
