"""Import Views: pick images (on an orbit), a folder with cameras, or a Zero123++ grid; checked here, then read
by the backend (the one authority on cameras: `cameras` request), which gives each view's camera; the views
become an editable camera rig at the 3D cursor (`rig.py`), replacing the scene's old rig in one undo step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

import bpy
from bpy.props import BoolProperty, CollectionProperty, StringProperty
from mathutils import Matrix

from ..contract import contract, files
from ..frames import xyz
from ..paths import new_job_folder
from ..props import settings, status
from ..rig import build_rig, install_rig, load_image, match_render_settings, remove_datablocks
from ..ui.thumbnails import show_thumbnails
from .base import BackendJobOperator, Result, warm_up
from .reconstruct import source_spec, views_name

IMAGE_SUFFIXES = contract.IMAGE_SUFFIXES  # what the backend's loaders read, no more
CAMERAS_JSON = contract.CAMERAS_JSON


class ViewsError(Exception):
    """A problem with the chosen files, in words for the user."""


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image Blender can read; a `ViewsError` naming the file otherwise."""
    problem = files.input_problem(path, "image file")
    if problem:
        raise ViewsError(problem)
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
    problem = files.input_problem(cameras, "camera file")
    if problem:
        raise ViewsError(problem)
    try:
        data = json.loads(cameras.read_text())
    except (OSError, ValueError) as error:
        raise ViewsError(f"{cameras.name}: not valid JSON ({error})") from None
    views = data.get("views") if isinstance(data, dict) else None
    if not isinstance(views, list) or not views:
        raise ViewsError(f'{cameras.name}: needs a non-empty list "views" (see docs/command-line.md: view sets)')
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


class GTR_OT_import_views(BackendJobOperator, bpy.types.Operator):
    """Import the views to reconstruct from (images on an orbit, a folder with cameras, or a Zero123++ grid) as
    a camera rig at the 3D cursor"""

    bl_idname = "gtr.import_views"
    bl_label = "Import Views"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")  # type: ignore[valid-type]
    directory: StringProperty(subtype="DIR_PATH")  # type: ignore[valid-type]
    files: CollectionProperty(type=bpy.types.OperatorFileListElement)  # type: ignore[valid-type]
    filter_glob: StringProperty(  # type: ignore[valid-type]
        default=";".join(f"*{suffix}" for suffix in (*IMAGE_SUFFIXES, ".json", ".txt")), options={"HIDDEN"}
    )
    set_resolution: BoolProperty(  # type: ignore[valid-type]
        name="Set Render Resolution",
        default=True,
        description="Render at the views' size, so that looking through a camera shows its image where the scene is",
    )

    count = 0  # cameras in the rig built

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not status(context).running

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

    def checked(self, source: str, chosen: list[Path], job: Path) -> tuple[Path, list[Path]]:
        """(the views' path for the backend, their image files), after the checks of this module; orbit images
        are copied into `job`/views (only these images, in this order)."""
        if source == "ORBIT":
            if len(chosen) == 1 and chosen[0].is_dir():
                chosen = sorted(p for p in chosen[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            check_orbit_images(chosen)
            folder = job / "views"
            folder.mkdir()
            for i, path in enumerate(chosen):
                shutil.copyfile(path, folder / f"{i:03d}_{path.name}")
            return folder, sorted(folder.iterdir())
        if source == "CAMERAS":
            target = chosen[0] if chosen[0].is_dir() or chosen[0].name == CAMERAS_JSON else chosen[0].parent
            return target, check_camera_folder(target)
        check_grid(chosen[0])
        return chosen[0], [chosen[0]]

    def execute(self, context: bpy.types.Context) -> Result:
        s = settings(context)
        self.source = s.views_source
        self.new_job = new_job_folder()  # the orbit's copies and the backend's rig images; removed on failure
        try:
            self.views_path, self.images = self.checked(self.source, self.chosen(), self.new_job)
        except ViewsError as problem:
            return self.fail(context, str(problem))  # removes the new job folder; the panel says why
        self.origin = Matrix.Translation(xyz(context.scene.cursor.location))
        spec = source_spec(s, self.source, str(self.views_path))
        return self.launch(context, "cameras", views=spec, folder=str(self.new_job / "rig"))

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        """Build the rig from the backend's cameras.json folder, then swap it in for the old one."""
        assert self.new_job is not None
        reply = cast("contract.CamerasReply", message)
        folder = Path(reply["path"]).parent
        images: list[bpy.types.Image] = []
        try:
            for entry, name in zip(reply["views"], reply["names"], strict=True):
                images.append(load_image(folder / entry["image"], name))
            rig = build_rig(views_name(self.views_path), self.origin, reply["views"], images, reply["names"])
        except BaseException:
            remove_datablocks(images)
            raise
        scene = context.scene
        assert scene is not None
        install_rig(scene, rig)
        self.count = len(images)
        if self.set_resolution:
            aspects = {round(entry["fx"] / entry["fy"], 9) for entry in reply["views"]}
            match_render_settings(scene, reply["width"], reply["height"], aspects.pop() if len(aspects) == 1 else 1)
        s = settings(context)
        s.views_path = str(self.views_path)
        s.view_images = json.dumps([str(p) for p in self.images])
        show_thumbnails(self.images)
        # The images are packed into the .blend: the backend's folder goes; the orbit's copies stay (views_path).
        shutil.rmtree(folder, ignore_errors=True)
        if self.source == "ORBIT":
            self.new_job = None
        else:
            shutil.rmtree(self.new_job, ignore_errors=True)
            self.new_job = None

    def finish(self, context: bpy.types.Context, text: str) -> Result:
        result = super().finish(context, f"{self.count} view(s) as cameras at the 3D cursor ({text})")
        warm_up(context)
        return result
