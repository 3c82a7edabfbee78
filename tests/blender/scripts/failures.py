"""Jobs that fail or are cancelled leave the scene exactly as it was and say why in plain words."""

import sys
from pathlib import Path

import bpy
from common import (
    addon_module,
    finish,
    install,
    make_test_object,
    preferences,
    scene_snapshot,
    status,
    use_this_python_as_backend,
)

install(sys.argv[1])
example, scratch = Path(sys.argv[2]), Path(sys.argv[3])
use_this_python_as_backend()
make_test_object()
bpy.context.scene.gtr.capture_resolution = 96
bpy.context.scene.gtr.capture_samples = 2
bpy.context.scene.gtr.views_source = "CAMERAS"
assert bpy.ops.gtr.import_views(directory=str(example), files=[{"name": "cameras.json"}]) == {"FINISHED"}
outcomes = {}


def attempt(name, operator):
    before = scene_snapshot()
    try:
        result = operator()
    except RuntimeError as error:  # an operator's ERROR report surfaces as RuntimeError in scripts
        result, reported = {"CANCELLED"}, str(error)
    else:
        reported = ""
    outcomes[name] = {
        "result": sorted(result),
        "unchanged": scene_snapshot() == before,
        "reported": reported,
        **status(),
    }


# 1. A weights file that is not one.
broken = scratch / "broken.safetensors"
broken.write_text("not weights")
preferences().weights_path = str(broken)
attempt("bad weights, reconstruct", bpy.ops.gtr.reconstruct)
attempt("bad weights, render selected", bpy.ops.gtr.render_selected_to_3d)
preferences().weights_path = ""
# 2. Cancelled (as if Esc was pressed while it ran).
base = addon_module("operators.base")
original = base.BackendJobOperator.cancel_requested
base.BackendJobOperator.cancel_requested = lambda self, context, event: True
attempt("cancelled, reconstruct", bpy.ops.gtr.reconstruct)
base.BackendJobOperator.cancel_requested = original
# 3. A backend process that dies at once.
preferences().python_path = "/bin/false"
attempt("backend dies", bpy.ops.gtr.reconstruct)
preferences().python_path = str(scratch / "no-such-python")
attempt("no backend python", bpy.ops.gtr.check_backend)
# 4. Bad view files are reported before anything runs.
bad = scratch / "bad-views"
bad.mkdir()
(bad / "cameras.json").write_text('{"views": [{"image": "missing.png", "matrix": []}]}')
before = scene_snapshot()
try:
    bpy.ops.gtr.import_views(directory=str(bad), files=[{"name": "cameras.json"}])
    outcomes["bad views"] = {"raised": False}
except RuntimeError as error:  # an operator's ERROR report surfaces as RuntimeError in scripts
    outcomes["bad views"] = {
        "raised": True,
        "message": str(error),
        "unchanged": scene_snapshot() == before,
        "views_path": bpy.context.scene.gtr.views_path,
    }
# 5. After all that, the real backend still works (restarted cleanly).
use_this_python_as_backend()
attempt("recovers", bpy.ops.gtr.reconstruct)
# 6. With "Keep Input Views" off, a finished job's folder goes too.
preferences().keep_jobs = False
attempt("not kept", bpy.ops.gtr.reconstruct)
preferences().keep_jobs = True
# 7. What is left behind: the failed jobs' folders are gone, the log has the tracebacks, and Copy Diagnostics
# carries the last message, the versions and the log's tail.
paths = addon_module("paths")
outcomes["job folders"] = sorted(p.name for p in paths.user_folder("jobs").iterdir() if not p.name.startswith("."))
outcomes["log"] = paths.backend_log().read_text()
outcomes["diagnostics"] = addon_module("operators.copy_diagnostics").diagnostics(bpy.context)
outcomes["seconds"] = bpy.context.window_manager.gtr_status.backend_seconds
finish(outcomes)
