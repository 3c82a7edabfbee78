"""Import Views: images on an orbit are copied into a job folder and reconstruct; bad files are named."""

import shutil
import sys
from pathlib import Path

import bpy
from common import finish, install, status, use_this_python_as_backend

install(sys.argv[1])
example, scratch = Path(sys.argv[2]), Path(sys.argv[3])
use_this_python_as_backend()
settings = bpy.context.scene.gtr
outcomes = {}


def attempt(name, **kwargs):
    try:
        result, reported = bpy.ops.gtr.import_views(**kwargs), ""
    except RuntimeError as error:
        result, reported = {"CANCELLED"}, str(error)
    outcomes[name] = {"result": sorted(result), "reported": reported, "views_path": settings.views_path}


settings.views_source = "ORBIT"
names = [f"view_{i:03d}.png" for i in range(4)]
attempt("orbit images", directory=str(example), files=[{"name": n} for n in names])
copied = sorted(p.name for p in Path(settings.views_path).iterdir())
assert bpy.ops.gtr.reconstruct() == {"FINISHED"}, status()
outcomes["copied"] = copied
outcomes["objects"] = sorted(o.name for o in bpy.data.objects if o.name.startswith("GTR"))
odd = scratch / "odd"
odd.mkdir()
for n in names[:3]:
    shutil.copyfile(example / n, odd / n)
small = bpy.data.images.load(str(example / names[3]))
small.scale(64, 64)
small.filepath_raw, small.file_format = str(odd / "small.png"), "PNG"
small.save()
bpy.data.images.remove(small)
attempt("mixed sizes", directory=str(odd), files=[{"name": n} for n in [*names[:3], "small.png"]])
(scratch / "notes.png").write_text("not an image")
attempt("not an image", directory=str(scratch), files=[{"name": "notes.png"}, {"name": "x.png"}])
settings.views_source = "ZERO123PP"
attempt("square grid", directory=str(example), files=[{"name": names[0]}])
outcomes["images_left"] = sorted(i.name for i in bpy.data.images)
finish(outcomes)
