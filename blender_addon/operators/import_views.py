"""Import Views: pick images (on an orbit), a folder with cameras, or a Zero123++ grid; checked before use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import bpy
from bpy.props import CollectionProperty, StringProperty

from ..contract import contract
from ..paths import new_job_folder
from ..props import settings
from ..ui.thumbnails import show_thumbnails
from .base import Result, warm_up

IMAGE_SUFFIXES = contract.IMAGE_SUFFIXES  # what the backend's loaders read, no more
CAMERAS_JSON = contract.CAMERAS_JSON


class ViewsError(Exception):
    """A problem with the chosen files, in words for the user."""


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image Blender can read; a `ViewsError` naming the file otherwise."""
    if not path.is_file():
        raise ViewsError(f"{path}: file not found")
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError:
        raise ViewsError(f"{path.name}: not an image Blender can read") from None
    try:
        width, height = int(image.size[0]), int(image.size[1])  # type: ignore[index]
    finally:
        bpy.data.images.remove(image)  # only a check: leave nothing behind
    if width == 0 or height == 0:
        raise ViewsError(f"{path.name}: the image is empty or unreadable")
    return width, height


def check_orbit_images(paths: list[Path]) -> None:
    if len(paths) < 2:
        raise ViewsError(f"pick at least 2 images (4 around the object work best); got {len(paths)}")
    sizes = {p.name: image_size(p) for p in paths}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{n} {w}x{h}" for n, (w, h) in sizes.items())
        raise ViewsError(f"the images differ in size ({listed}); give views of one size")


def check_camera_folder(folder: Path) -> list[Path]:
    cameras = folder / CAMERAS_JSON if folder.is_dir() else folder
    if cameras.name != CAMERAS_JSON:
        releases = sorted(folder.glob("cam_*.txt")) if folder.is_dir() else []
        if releases:
            return [p for p in sorted(folder.glob("rgb_*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        raise ViewsError(
            f"{folder}: no cameras.json (or cam_NNN.txt) here; pick 'Images on an Orbit' for images without cameras"
        )
    if not cameras.is_file():
        raise ViewsError(f"{cameras}: file not found")
    try:
        data = json.loads(cameras.read_text())
    except (OSError, ValueError) as error:
        raise ViewsError(f"{cameras.name}: not valid JSON ({error})") from None
    views = data.get("views") if isinstance(data, dict) else None
    if not isinstance(views, list) or not views:
        raise ViewsError(f'{cameras.name}: needs a non-empty list "views" (see README: view folders)')
    images = []
    for i, view in enumerate(views):
        if not isinstance(view, dict) or "image" not in view or "matrix" not in view:
            raise ViewsError(f'{cameras.name}: view {i} needs "image" and "matrix"')
        images.append(cameras.parent / str(view["image"]))
    for path in images:
        image_size(path)
    return images


def check_grid(path: Path) -> None:
    width, height = image_size(path)
    if abs(width * 3 - height * 2) > 3:
        raise ViewsError(f"{path.name}: {width}x{height} is not a Zero123++ 3x2 grid (2 wide, 3 high, e.g. 640x960)")


class GTR_OT_import_views(bpy.types.Operator):
    """Import the views to reconstruct from: images on an orbit, a folder with cameras, or a Zero123++ grid"""

    bl_idname = "gtr.import_views"
    bl_label = "Import Views"
    bl_options = {"REGISTER"}

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    directory: StringProperty(subtype="DIR_PATH")  # type: ignore[valid-type]
    files: CollectionProperty(type=bpy.types.OperatorFileListElement)  # type: ignore[valid-type]
    filter_glob: StringProperty(  # type: ignore[valid-type]
        default=";".join(f"*{suffix}" for suffix in (*IMAGE_SUFFIXES, ".json", ".txt")), options={"HIDDEN"}
    )

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def chosen(self) -> list[Path]:
        folder = (
            Path(bpy.path.abspath(self.directory)) if self.directory else Path(bpy.path.abspath(self.filepath)).parent
        )
        names = [f.name for f in self.files if f.name]
        if names:
            return [folder / n for n in names]
        return [Path(bpy.path.abspath(self.filepath))] if self.filepath else [folder]

    def execute(self, context: bpy.types.Context) -> Result:
        s = settings(context)
        chosen = self.chosen()
        try:
            if s.views_source == "ORBIT":
                if len(chosen) == 1 and chosen[0].is_dir():
                    chosen = sorted(p for p in chosen[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                check_orbit_images(chosen)
                folder = new_job_folder() / "views"
                folder.mkdir()
                for i, path in enumerate(chosen):  # only these images, in this order
                    shutil.copyfile(path, folder / f"{i:03d}_{path.name}")
                views_path, images = folder, sorted(folder.iterdir())
            elif s.views_source == "CAMERAS":
                target = chosen[0] if chosen[0].is_dir() or chosen[0].name == CAMERAS_JSON else chosen[0].parent
                images = check_camera_folder(target)
                views_path = target
            else:
                check_grid(chosen[0])
                views_path, images = chosen[0], [chosen[0]]
        except ViewsError as problem:
            self.report({"ERROR"}, f"GTR: {problem}")
            return {"CANCELLED"}
        s.views_path = str(views_path)
        s.view_images = json.dumps([str(p) for p in images])
        show_thumbnails(images)
        warm_up(context)
        self.report({"INFO"}, f"GTR: {len(images)} view(s) ready from {views_path}")
        return {"FINISHED"}
