"""Import Views: images on an orbit are copied into a job folder and reconstruct; bad files are named, and the
panel says why the last import failed; cameras that do not go around the object import with a warning the
panel shows."""

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import bpy
from common import addon_module, finish, install, status, use_this_python_as_backend

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
    state = bpy.context.window_manager.gtr_status
    outcomes[name] = {
        "result": sorted(result),
        "reported": reported,
        "views_path": settings.views_path,
        "message": state.message,
        "warning": state.warning,
        "panel": panel_labels(),
    }


class Layout:
    """Stands in for the panel's layout (no window here): records the text of every label drawn."""

    def __init__(self, labels: list) -> None:
        self.labels = labels

    def label(self, text: str = "", **kwargs: object) -> None:
        self.labels.append(text)

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: Layout(self.labels)


def panel_labels() -> list:
    labels: list = []
    addon_module("ui.panel").GTR_PT_panel.draw(SimpleNamespace(layout=Layout(labels)), bpy.context)
    return labels


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
# Views with Cameras: an image that is a folder is named as one; cameras all at one pose import with a warning.
settings.views_source = "CAMERAS"
one_pose = scratch / "one pose"
shutil.copytree(example, one_pose)
cameras = json.loads((one_pose / "cameras.json").read_text())
for view in cameras["views"]:
    view["matrix"] = cameras["views"][0]["matrix"]
(one_pose / "cameras.json").write_text(json.dumps(cameras))
attempt("one pose", directory=str(one_pose), files=[{"name": "cameras.json"}])
folder_image = scratch / "folder image"
shutil.copytree(example, folder_image)
(folder_image / names[1]).unlink()
(folder_image / names[1]).mkdir()
attempt("image is a folder", directory=str(folder_image), files=[{"name": "cameras.json"}])
finish(outcomes)
