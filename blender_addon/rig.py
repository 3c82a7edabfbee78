"""The camera rig: the views as Blender cameras an artist can move, add, delete and give other images.

A rig is one collection (marked with `RIG_PROPERTY`, one per scene) holding an Empty, the rig's origin
(`ORIGIN_PROPERTY`), and one camera per view parented to it. The origin's frame is the backend's world turned
Z-up: a point p in the backend frame (Y up, `gtr_backend.views.cameras`) sits at
origin.matrix_world @ BACKEND_TO_BLENDER @ p. Import Views puts the origin at the 3D cursor with unit scale
(backend units = Blender units); Render Selected puts it on the captured object, scaled by its normalisation.
Reconstruct places its result with the origin's matrix, so the mesh lines up with the cameras.

Each camera's view is:
- its pose: origin.matrix_world^-1 @ camera.matrix_world, turned into an OpenCV camera-to-world matrix in the
  backend frame (`frames.camera_to_backend`; the camera's scale is ignored);
- its image: the camera's first background image (packed in the .blend or a file on disk);
- its intrinsics (fx, fy, cx, cy in pixels of that image, pixel centres at i + 0.5) from lens, sensor, sensor
  fit and shift exactly as Blender projects (`intrinsics`), with the image's size as the render resolution and
  `PIXEL_ASPECT_PROPERTY` (fx / fy, 1 for square pixels) as Blender's pixel aspect y / x. Blender keeps pixel
  aspect per scene, not per camera, so the camera carries it; Import Views sets the scene's render resolution
  and pixel aspect to the views' so that looking through a camera shows its image where the scene is.
`IMAGE_PROPERTY` names the image file each camera's view came from (for the artist; the background image is
what counts).

Writing a rig (`write_views`) gives a cameras.json view folder (`contract.VIEWS_FORMAT`, OpenCV, camera-to-world)
that `gtr reconstruct` reads back to the same cameras; the folder appears whole or not at all.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import bpy
from mathutils import Matrix, Vector

from .contract import contract, files
from .frames import Normalization, camera_from_backend, camera_to_backend, matrix_rows, xyz

RIG_PROPERTY = "gtr_rig"  # on the collection: the name results reconstructed from the rig take
ORIGIN_PROPERTY = "gtr_rig_origin"  # on the Empty the cameras hang from
IMAGE_PROPERTY = "gtr_image"  # on each camera: the image file its view came from
INDEX_PROPERTY = "gtr_index"  # on each camera: its place in the view order (new cameras come after, by name)
PIXEL_ASPECT_PROPERTY = "gtr_pixel_aspect"  # on each camera: fx / fy (Blender's pixel aspect y / x)
RIG_COLLECTION = "GTR Views"
SENSOR_WIDTH = 36.0  # mm: Blender's default full-frame sensor; the focal length follows from it
UNIT = Normalization(Vector((0.0, 0.0, 0.0)), 1.0)  # the rig's frame: backend units, Blender axes
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}


class RigError(Exception):
    """The rig cannot be read or written; the message names the camera or file and what to do."""


@dataclass(frozen=True)
class Lens:
    """Blender camera settings that reproduce pinhole intrinsics: lens and sensor in mm, shift in units of the
    larger image side (Blender's convention), `pixel_aspect` = fx / fy."""

    lens: float
    sensor_width: float
    sensor_fit: Literal["HORIZONTAL", "VERTICAL"]
    shift_x: float
    shift_y: float
    pixel_aspect: float


def lens_from_intrinsics(fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> Lens:
    """Pinhole intrinsics (pixels of a width x height image) -> Blender camera settings (inverse of
    `intrinsics`). The sensor is fitted explicitly to the wider side, as "Auto" would, so the settings mean the
    same whatever the scene's resolution."""
    if min(fx, fy) <= 0 or width <= 0 or height <= 0:
        raise RigError(f"the focal lengths ({fx:g}, {fy:g}) and the image size ({width}x{height}) must be positive")
    ycor = fx / fy
    horizontal = width >= ycor * height
    viewfac = width if horizontal else ycor * height
    return Lens(
        lens=fx / viewfac * SENSOR_WIDTH,
        sensor_width=SENSOR_WIDTH,
        sensor_fit="HORIZONTAL" if horizontal else "VERTICAL",
        shift_x=(width / 2 - cx) / viewfac,
        shift_y=(cy - height / 2) * ycor / viewfac,
        pixel_aspect=ycor,
    )


def intrinsics(
    lens: float,
    sensor_width: float,
    sensor_height: float,
    sensor_fit: str,
    shift_x: float,
    shift_y: float,
    width: int,
    height: int,
    pixel_aspect: float = 1.0,
) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in pixels of a width x height image, as Blender projects a perspective camera
    (`BKE_camera_params_compute_viewplane`): the sensor side that fits spans `viewfac` pixel widths, shifts are
    in units of it, and a row is `pixel_aspect` (= Blender's pixel aspect y / x) pixel widths tall."""
    fit: str = sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= pixel_aspect * height else "VERTICAL"
    sensor = sensor_height if fit == "VERTICAL" else sensor_width
    viewfac = width if fit == "HORIZONTAL" else pixel_aspect * height
    focal = lens / sensor * viewfac  # in pixel widths
    return focal, focal / pixel_aspect, width / 2 - shift_x * viewfac, height / 2 + shift_y * viewfac / pixel_aspect


# ---------------------------------------------------------------------------------------------------------------
# Finding and building rigs.


def find_rig(scene: bpy.types.Scene | None) -> bpy.types.Collection | None:
    """The scene's rig collection (anywhere under its collections), or None."""
    if scene is None:
        return None
    for collection in scene.collection.children_recursive:
        if collection.get(RIG_PROPERTY) is not None:
            return collection
    return None


def rig_origin(rig: bpy.types.Collection) -> bpy.types.Object:
    origin = next((o for o in rig.all_objects if is_origin(o)), None)
    if origin is None:
        raise RigError(
            f"the rig '{rig.name}' has lost its origin (the Empty the cameras hang from); import the views again"
        )
    return origin


def is_origin(obj: bpy.types.Object) -> bool:
    return obj.get(ORIGIN_PROPERTY) is not None


def camera_data(objects: Sequence[bpy.types.Object]) -> list[bpy.types.Camera]:
    """The objects' camera data, each once (cameras may share it)."""
    return list({o.data.name: o.data for o in objects if isinstance(o.data, bpy.types.Camera)}.values())


def background_images(cameras: Sequence[bpy.types.Camera]) -> list[bpy.types.Image]:
    """The cameras' background images, each once."""
    return list({b.image.name: b.image for c in cameras for b in c.background_images if b.image is not None}.values())


def rig_name(rig: bpy.types.Collection) -> str:
    return str(rig.get(RIG_PROPERTY) or "views")


def load_image(path: Path, name: str) -> bpy.types.Image:
    """An image file as a new image datablock named `name`, packed into the .blend (the rig needs no files)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    image.pack()
    return image


def build_rig(
    name: str,
    origin: Matrix,
    views: Sequence[dict[str, Any]],
    images: Sequence[bpy.types.Image],
    sources: Sequence[str],
) -> bpy.types.Collection:
    """A new rig collection, not yet in any scene (`install_rig` puts it there).

    name: what results reconstructed from the rig are called after. origin: 4x4, the rig's frame in the Blender
    world (see the module docstring). views: cameras.json entries (fx, fy, cx, cy in pixels of the image,
    "matrix": OpenCV camera-to-world in the backend frame). images: one per view, its background image.
    sources: the file each view came from (names the camera). On failure nothing is left behind."""
    made: list[Any] = []
    try:
        rig = bpy.data.collections.new(RIG_COLLECTION)
        made.append(rig)
        rig[RIG_PROPERTY] = name
        root = bpy.data.objects.new("Views Origin", None)
        made.append(root)
        root[ORIGIN_PROPERTY] = True
        root.empty_display_type = "PLAIN_AXES"
        root.empty_display_size = 0.25
        root.matrix_world = origin
        rig.objects.link(root)
        scale = max(xyz(origin.to_scale()))  # Blender units per rig unit
        for index, (view, image, source) in enumerate(zip(views, images, sources, strict=True)):
            width, height = (int(v) for v in image.size)  # type: ignore[attr-defined]
            lens = lens_from_intrinsics(view["fx"], view["fy"], view["cx"], view["cy"], width, height)
            label = camera_label(source)
            data = bpy.data.cameras.new(label)
            made.append(data)
            data.lens, data.sensor_width, data.sensor_fit = lens.lens, lens.sensor_width, lens.sensor_fit
            data.sensor_height = lens.sensor_width
            data.shift_x, data.shift_y = lens.shift_x, lens.shift_y
            data.clip_start, data.clip_end = 0.01 * scale, 100.0 * scale
            data.show_background_images = True
            background = data.background_images.new()
            background.image = image
            background.frame_method = "STRETCH"  # the image fills the camera frame, corner to corner
            background.alpha = 0.6
            camera = bpy.data.objects.new(label, data)
            made.append(camera)
            camera[IMAGE_PROPERTY] = source
            camera[INDEX_PROPERTY] = index
            camera[PIXEL_ASPECT_PROPERTY] = lens.pixel_aspect
            camera.parent = root
            camera.matrix_parent_inverse = Matrix.Identity(4)
            camera.matrix_basis = camera_from_backend(Matrix(view["matrix"]), UNIT)
            rig.objects.link(camera)
        return rig
    except BaseException:
        remove_datablocks(made)
        raise


def camera_label(source: str) -> str:
    """A camera's name from its view's source: the file's name without its suffix."""
    name = Path(source).name
    stem, suffix = os.path.splitext(name)
    return (stem if suffix.lower() in contract.IMAGE_SUFFIXES else name)[:60] or "view"


def install_rig(scene: bpy.types.Scene, rig: bpy.types.Collection) -> None:
    """Put a built rig into the scene, then remove the scene's old rig (see `remove_rig`)."""
    old = find_rig(scene)
    scene.collection.children.link(rig)
    if old is not None:
        remove_rig(scene, old)
        # The new rig was built while the old one held its names: take them over now that they are free.
        objects = list(rig.all_objects)
        cameras = camera_data(objects)
        for blocks, store in (
            ([rig], bpy.data.collections),
            (objects, bpy.data.objects),
            (cameras, bpy.data.cameras),
            (background_images(cameras), bpy.data.images),
        ):
            for block in blocks:
                base = re.sub(r"\.\d{3}$", "", block.name)
                if base != block.name and base not in store:
                    block.name = base


def remove_rig(scene: bpy.types.Scene, rig: bpy.types.Collection) -> None:
    """Remove a rig: its origin, its cameras, their data and background images where nothing else uses them.
    Anything else the artist put into the rig's collection moves to the scene's collection."""
    objects = [o for o in rig.all_objects if o.type == "CAMERA" or is_origin(o)]
    for child in rig.children:
        if child.name not in scene.collection.children:
            scene.collection.children.link(child)
    for other in rig.objects:
        if other not in objects and other.name not in scene.collection.objects:
            scene.collection.objects.link(other)
    cameras = camera_data(objects)
    images = background_images(cameras)
    for obj in objects:
        bpy.data.objects.remove(obj)
    for data in cameras:
        if data.users == 0:
            bpy.data.cameras.remove(data)
    for image in images:
        if image.users == 0:
            bpy.data.images.remove(image)
    bpy.data.collections.remove(rig)


def discard_rig(rig: bpy.types.Collection) -> None:
    """Remove a built rig that never went into a scene, with everything `build_rig` made for it."""
    objects = list(rig.all_objects)
    cameras = camera_data(objects)
    remove_datablocks([*objects, *cameras, *background_images(cameras), rig])


def remove_datablocks(made: Sequence[Any]) -> None:
    """Remove datablocks this module made (objects first, so their data is unused by then)."""
    kinds = (
        (bpy.types.Object, bpy.data.objects),
        (bpy.types.Camera, bpy.data.cameras),
        (bpy.types.Image, bpy.data.images),
        (bpy.types.Collection, bpy.data.collections),
    )
    for kind, store in kinds:
        for block in made:
            if isinstance(block, kind) and block.name in store and store[block.name] == block:
                store.remove(block)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Reading and writing rigs.


@dataclass(frozen=True)
class RigView:
    """One camera of a rig, read: its image, intrinsics (pixels of the image) and OpenCV c2w (backend frame)."""

    camera: str
    image: bpy.types.Image
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    c2w: Matrix


def rig_cameras(rig: bpy.types.Collection) -> list[bpy.types.Object]:
    """The rig's cameras in view order: as imported, then any the artist added, by name."""
    cameras = [o for o in rig.all_objects if o.type == "CAMERA"]
    return sorted(cameras, key=lambda o: (int(o.get(INDEX_PROPERTY, 1 << 30)), o.name))


def background_image(camera: bpy.types.Object) -> bpy.types.Image:
    data = camera.data
    assert isinstance(data, bpy.types.Camera)
    for background in data.background_images:
        if background.image is not None:
            return background.image
    raise RigError(
        f"camera '{camera.name}' has no background image: give it its view's image (Camera properties > "
        "Background Images) or delete the camera"
    )


def read_rig(rig: bpy.types.Collection) -> list[RigView]:
    """Every camera of the rig as a view (see the module docstring); a `RigError` names the first bad camera."""
    origin = rig_origin(rig).matrix_world.inverted_safe()
    cameras = rig_cameras(rig)
    if not cameras:
        raise RigError(f"the rig '{rig.name}' has no cameras; add some or import the views again")
    views = []
    for camera in cameras:
        data = camera.data
        assert isinstance(data, bpy.types.Camera)
        if data.type != "PERSP":
            raise RigError(f"camera '{camera.name}' is {data.type.lower()}: the views need perspective cameras")
        image = background_image(camera)
        width, height = (int(v) for v in image.size)  # type: ignore[attr-defined]
        if width == 0 or height == 0:
            raise RigError(
                f"camera '{camera.name}': its image '{image.name}' cannot be read (missing file?); pick the image again"
            )
        aspect = float(camera.get(PIXEL_ASPECT_PROPERTY, 1.0))
        fx, fy, cx, cy = intrinsics(
            data.lens,
            data.sensor_width,
            data.sensor_height,
            data.sensor_fit,
            data.shift_x,
            data.shift_y,
            width,
            height,
            aspect,
        )
        c2w = camera_to_backend(origin @ camera.matrix_world, UNIT)
        views.append(RigView(camera.name, image, width, height, fx, fy, cx, cy, c2w))
    return views


def image_bytes(view: RigView) -> tuple[bytes, str]:
    """The image's file as stored (packed bytes, or the file on disk) and its suffix; a `RigError` otherwise."""
    image = view.image
    suffix = Path(image.filepath).suffix.lower()
    if suffix not in contract.IMAGE_SUFFIXES:
        suffix = SUFFIXES.get(image.file_format, "")
    if suffix not in contract.IMAGE_SUFFIXES:
        raise RigError(
            f"camera '{view.camera}': its image '{image.name}' is {image.file_format}, which the backend does not "
            f"read; use one of {', '.join(contract.IMAGE_SUFFIXES)}"
        )
    if image.packed_file is not None:
        return bytes(image.packed_file.data), suffix
    path = Path(bpy.path.abspath(image.filepath))
    if image.source == "FILE" and path.is_file():
        return path.read_bytes(), suffix
    raise RigError(
        f"camera '{view.camera}': its image '{image.name}' has no file ({path} is missing, or it was made in "
        "Blender); save it as an image file, or pick the image again"
    )


def file_name(label: str, suffix: str, taken: set[str]) -> str:
    """A file name from a camera's name: only plain characters, unique among `taken`."""
    stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", label).strip(" .") or "view"
    name, n = f"{stem}{suffix}", 1
    while name.lower() in taken:
        n += 1
        name = f"{stem}_{n}{suffix}"
    taken.add(name.lower())
    return name


def write_views(rig: bpy.types.Collection, folder: Path) -> Path:
    """Write the rig as a view folder at `folder` (which must not exist, or be empty): the images as stored and
    cameras.json (OpenCV camera-to-world, backend frame, fx fy cx cy in pixels). Everything is written into a
    hidden folder beside it first, which then takes its place: `folder` appears whole or not at all.
    Returns the path of cameras.json."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # the folder, or the nearest above it
    if not existing.is_dir():
        raise RigError(f"{existing} is a file, not a folder: choose a new or empty folder for the views")
    if folder.is_dir() and any(folder.iterdir()):
        raise RigError(f"{folder} is not empty: choose a new or empty folder so that no file is overwritten")
    views = read_rig(rig)
    try:
        with files.staged_folder(folder) as staging:
            entries, taken = [], {contract.CAMERAS_JSON}
            for view in views:
                data, suffix = image_bytes(view)
                name = file_name(view.camera, suffix, taken)
                (staging / name).write_bytes(data)
                intrinsic = {"fx": view.fx, "fy": view.fy, "cx": view.cx, "cy": view.cy}
                entries.append({"image": name, **intrinsic, "matrix": matrix_rows(view.c2w), "camera": view.camera})
            contract.write_cameras(staging, entries)
    except files.WriteError as error:  # no room, no permission: one line, the folder as it was
        raise RigError(str(error)) from None
    return folder / contract.CAMERAS_JSON


def match_render_settings(scene: bpy.types.Scene, width: int, height: int, pixel_aspect: float) -> None:
    """Make the scene render at the views' size and pixel aspect, so a rig camera's frame is its image's."""
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    # Blender's pixel aspects are at least 1: the larger side carries the ratio (y / x = pixel_aspect).
    render.pixel_aspect_x, render.pixel_aspect_y = max(1.0, 1 / pixel_aspect), max(1.0, pixel_aspect)
    if math.isclose(pixel_aspect, 1.0, rel_tol=1e-9):
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
