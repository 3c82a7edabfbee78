"""View-set loaders and writers: files on disk in, a validated `ViewSet` (world frame of `views.cameras`) out.

Formats:
1. The project's own folder: images beside a ``cameras.json`` that states its conventions (docs/command-line.md,
   "View sets"); written by `save_views`.
2. The released GTR format: ``rgb_NNN.png`` (RGBA) beside ``cam_NNN.txt`` (world-to-camera extrinsic,
   OpenCV axes, and ``fx, fy, cx, cy, height, width``); written by `save_gtr_release`.
3. A Zero123++ 3x2 grid image (6 views with fixed poses).
4. Plain images with an `Orbit` preset (N cameras at given azimuths, elevation, FoV and distance).
`load_views` picks the format from what it finds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..contract import (
    CAMERAS_JSON,
    IMAGE_SUFFIXES,
    ORBIT_DISTANCE,
    ORBIT_ELEVATION_DEG,
    ORBIT_FOV_DEG,
    VIEWS_FORMAT,
    cameras_field,
    read_cameras,
    write_cameras,
)
from ..errors import ViewError
from ..files import atomic_write, input_problem, name_problem
from .cameras import OPENGL_TO_OPENCV, intrinsics_from_fov, invert_pose, orbit_poses
from .images import (
    Background,
    image_size,
    read_image,
    read_view,
    split_rgba,
    stack_views,
    write_rgba,
)
from .viewset import ViewSet

PROJECT_FORMAT = VIEWS_FORMAT

# Zero123++ v1.2 grid (docs/method.md, section 3): 3 rows x 2 columns, views in row-major order.
ZERO123PP_POLAR_DEG = (70.0, 100.0, 70.0, 100.0, 70.0, 100.0)
ZERO123PP_AZIMUTH_DEG = (60.0, 0.0, -60.0, -120.0, 180.0, 120.0)
ZERO123PP_DISTANCE = 4.0
ZERO123PP_FOV_DEG = 30.0


@dataclass(frozen=True)
class Orbit:
    """Cameras for images that come without any: N views on an orbit around the origin.

    `azimuths_deg` defaults to N evenly spaced azimuths starting at 0 (0/90/180/270 for 4 views).
    The defaults (`contract`) match a typical 4-view capture: elevation 20 deg, FoV 40 deg, distance 2.7; the
    working sphere of radius 0.8 is in view with a margin (the corners of the box [-1, 1]^3 are not).
    """

    azimuths_deg: tuple[float, ...] | None = None
    elevation_deg: float = ORBIT_ELEVATION_DEG
    fov_deg: float = ORBIT_FOV_DEG
    distance: float = ORBIT_DISTANCE

    def poses(self, num_views: int) -> Tensor:
        azimuths = self.azimuths_deg or tuple(360.0 * i / num_views for i in range(num_views))
        if len(azimuths) != num_views:
            raise ViewError(f"orbit: {len(azimuths)} azimuths given for {num_views} images")
        return orbit_poses(azimuths, self.elevation_deg, self.distance)


# ---------------------------------------------------------------------------------------------------------------
# 1. The project's folder format.


def _file_name(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 1024:
        raise ViewError(f"{where}: {key!r} must be the file name of an image beside cameras.json, got {value!r:.60}")
    return value


def _matrix(value: Any, where: str) -> Tensor:
    try:
        m = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise ViewError(f"{where}: 'matrix' must be a 4x4 list of numbers") from None
    if m.shape != (4, 4):
        raise ViewError(f"{where}: 'matrix' must be 4x4, got shape {tuple(m.shape)}")
    if not torch.isfinite(m).all():
        raise ViewError(f"{where}: the camera matrix contains NaN or Inf")
    return m


def _intrinsics(view: dict[str, Any], where: str, loaded: tuple[int, int], stored: tuple[int, int]) -> Tensor:
    """(fx, fy, cx, cy) in pixels of the loaded image (width, height `loaded`), from `fov_deg` or from pixel
    values that refer to the image file as stored (`stored`, larger when it was downsampled on load)."""
    if view.get("fov_deg") is not None:
        fov = view["fov_deg"]
        if isinstance(fov, bool) or not isinstance(fov, int | float) or not 0 < fov < 180:
            raise ViewError(f"{where}: fov_deg must be a number of degrees between 0 and 180, got {fov!r}")
        return intrinsics_from_fov(float(fov), *loaded)
    try:
        k = torch.tensor([float(view[name]) for name in ("fx", "fy", "cx", "cy")], dtype=torch.float64)
    except KeyError as key:
        raise ViewError(f"{where}: missing {key}; give fx, fy, cx, cy (pixels) or fov_deg") from None
    except (TypeError, ValueError):
        raise ViewError(f"{where}: fx, fy, cx, cy must be numbers") from None
    sx, sy = loaded[0] / stored[0], loaded[1] / stored[1]
    return k * torch.tensor([sx, sy, sx, sy], dtype=torch.float64)


def load_project_folder(path: Path, background: Background = None) -> ViewSet:
    """A folder with ``cameras.json`` (or the path of that file) -> ViewSet."""
    cameras = read_cameras(path)
    json_path, views, where = cameras.path, cameras.views, str(cameras.path)
    loaded, intrinsics, poses, names, depths, held_out = [], [], [], [], [], []
    surfaces: dict[str, list[Tensor]] = {key: [] for key in SURFACE_PASSES}
    for i, view in enumerate(views):
        view_where = f"{where}, view {i}"
        image = json_path.parent / _file_name(cameras_field(view, "image", view_where), "image", view_where)
        mask = json_path.parent / _file_name(view["mask"], "mask", view_where) if "mask" in view else None
        rgb, alpha = read_view(image, mask, background)
        if "depth" in view:
            depth_path = json_path.parent / _file_name(view["depth"], "depth", view_where)
            depths.append(read_depth(depth_path, (rgb.shape[1], rgb.shape[2])))
        for key, found in surfaces.items():
            if key in view:
                found.append(read_surface_pass(json_path.parent / _file_name(view[key], key, view_where), rgb.shape))
        held = view.get("held_out", False)
        if not isinstance(held, bool):
            raise ViewError(f"{view_where}: 'held_out' must be true or false, got {held!r:.40}")
        held_out.append(held)
        matrix = _matrix(cameras_field(view, "matrix", view_where), view_where)
        c2w = matrix if cameras.pose == "camera_to_world" else invert_pose(matrix, view_where)
        if cameras.camera_axes == "opengl":
            c2w = c2w @ OPENGL_TO_OPENCV
        loaded.append((rgb, alpha))
        loaded_size = (rgb.shape[2], rgb.shape[1])
        intrinsics.append(_intrinsics(view, view_where, loaded_size, image_size(image)))
        poses.append(c2w)
        names.append(image.name)
    if depths and len(depths) != len(views):
        raise ViewError(f"{where}: {len(depths)} of {len(views)} views give a 'depth' file; give one for every view")
    for key, found in surfaces.items():
        if found and len(found) != len(views):
            raise ViewError(f"{where}: {len(found)} of {len(views)} views give a {key!r} file; give one for every view")
    rgbs, masks = stack_views(loaded, names)
    depth = torch.stack(depths)[:, None] if depths else None
    if depth is not None and depth.shape[2:] != rgbs.shape[2:]:
        raise ViewError(f"{where}: the depth maps must have the images' size")
    material, emission = (torch.stack(surfaces[key]) if surfaces[key] else None for key in SURFACE_PASSES)
    try:
        return ViewSet.from_tensors(
            rgbs, masks, torch.stack(intrinsics), torch.stack(poses), names, depth, held_out, material, emission
        )
    except ViewError as error:
        raise ViewError(f"{where}: {error}") from None


# Per-view surface passes a capture may give beside its images (cameras.json keys), read by `read_surface_pass`:
# "material", an RGBA PNG of roughness (R), metallic (G) and where they are known (A; 0 where the source's
# shader had no Principled BSDF), stored as plain values (no colour transform); "emission", an RGB PNG of the
# emitted colour (display values, like the image).
SURFACE_PASSES = ("material", "emission")


def read_surface_pass(path: Path, shape: tuple[int, ...]) -> Tensor:
    """A surface pass image -> (3, H, W) in [0, 1] at the size of its view's image `shape` (3, H, W): material
    (roughness, metallic, known) from RGBA, emission (r, g, b) from RGB; a `ViewError` naming the file
    otherwise."""
    import torch.nn.functional as F

    array = read_image(path)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ViewError(f"{path}: a material or emission pass must be an RGB or RGBA image")
    values = torch.from_numpy(array).permute(2, 0, 1).float()
    values = torch.cat([values[:2], values[3:]]) if values.shape[0] == 4 else values  # RGBA: R, G and A
    if tuple(values.shape[1:]) != tuple(shape[1:]):
        values = F.interpolate(values[None], size=tuple(shape[1:]), mode="bilinear", align_corners=False)[0]
    return values.clamp(0, 1)


def read_depth(path: Path, size: tuple[int, int]) -> Tensor:
    """A depth map: a NumPy ``.npy`` file of float32 (H, W), the camera-space z (world units, OpenCV camera, the
    view's own frame) of the surface each pixel sees, 0 where none; resampled to `size` (height, width) when
    the image it belongs to was. Never unpickled: object arrays are refused."""
    import numpy as np

    from .viewset import resample_depth

    problem = input_problem(path, "depth map")
    if problem:
        raise ViewError(problem)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ViewError(f"{path}: not a NumPy .npy depth map ({error}); write it with numpy.save") from None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype.kind != "f":
        raise ViewError(f"{path}: a depth map must be a 2-D array of floats (H, W), got {getattr(array, 'dtype', '?')}")
    if not np.isfinite(array).all() or float(array.min(initial=0.0)) < 0:
        raise ViewError(f"{path}: depth must be finite and not negative (0 where no surface is seen)")
    depth = torch.from_numpy(array.astype(np.float32))[None, None]
    return resample_depth(depth, size)[0, 0]


def save_views(views: ViewSet, folder: Path, prefix: str = "view") -> Path:
    """Write `views` as RGBA PNGs plus ``cameras.json`` (OpenCV, camera-to-world); returns the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(views.num_views):
        name = f"{prefix}_{i:03d}.png"
        write_rgba(folder / name, views.rgb[i], views.mask[i])
        fx, fy, cx, cy = views.intrinsics[i].tolist()
        entry: dict[str, Any] = {
            "image": name,
            "fx": fx,
            "fy": fy,
            "cx": cx,
            "cy": cy,
            "matrix": views.c2w[i].double().tolist(),
        }
        if views.depth is not None:
            import numpy as np

            entry["depth"] = f"{prefix}_{i:03d}_depth.npy"
            np.save(folder / entry["depth"], views.depth[i, 0].detach().cpu().numpy().astype(np.float32))
        if views.material is not None:
            entry["material"] = f"{prefix}_{i:03d}_material.png"
            write_surface_pass(folder / entry["material"], views.material[i], "material")
        if views.emission is not None:
            entry["emission"] = f"{prefix}_{i:03d}_emission.png"
            write_surface_pass(folder / entry["emission"], views.emission[i], "emission")
        if views.held_out and views.held_out[i]:
            entry["held_out"] = True
        entries.append(entry)
    return write_cameras(folder, entries)


def write_surface_pass(path: Path, values: Tensor, kind: str) -> None:
    """Save a "material" (roughness, metallic, known: RGBA as R, G, -, A) or "emission" (RGB) pass (3, H, W) in
    [0, 1] as the 8-bit PNG `read_surface_pass` reads."""
    from PIL import Image

    from ..pixels import to_uint8

    if kind == "material":
        values = torch.cat([values[:2], torch.zeros_like(values[:1]), values[2:]])
    array = to_uint8(values).permute(1, 2, 0).cpu().numpy()
    image = Image.fromarray(array, mode="RGBA" if array.shape[2] == 4 else "RGB")
    atomic_write(path, lambda temporary: image.save(temporary, format="PNG"))


# ---------------------------------------------------------------------------------------------------------------
# 2. The released GTR format.


def parse_gtr_camera(path: Path) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """``cam_NNN.txt`` -> (world-to-camera (4, 4), (fx, fy, cx, cy), (height, width)), float64."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as error:
        raise ViewError(f"{path}: cannot read camera file ({error})") from None

    def numbers(text: str) -> list[float]:
        try:
            return [float(v) for v in re.split(r"[,\s]+", text.strip()) if v]
        except ValueError:
            raise ViewError(f"{path}: expected numbers, found {text!r}") from None

    try:
        start = next(i for i, line in enumerate(lines) if line.lower().startswith("extrinsic"))
        header = next(i for i, line in enumerate(lines) if line.lower().startswith("intrinsic"))
    except StopIteration:
        raise ViewError(
            f"{path}: not a GTR camera file: expected an 'extrinsic' line, 4 matrix rows, and an "
            "'intrinsic fx, fy, cx, cy, height, width' line followed by six numbers"
        ) from None
    rows = [numbers(line) for line in lines[start + 1 : header] if line]
    if len(rows) != 4 or any(len(r) != 4 for r in rows):
        raise ViewError(f"{path}: the extrinsic must be 4 rows of 4 numbers")
    values = numbers(" ".join(lines[header + 1 :]))
    if len(values) != 6:
        raise ViewError(f"{path}: expected six intrinsic numbers (fx, fy, cx, cy, height, width), found {len(values)}")
    w2c = torch.tensor(rows, dtype=torch.float64)
    if not torch.isfinite(w2c).all() or not all(map(torch.isfinite, torch.tensor(values))):
        raise ViewError(f"{path}: the camera contains NaN or Inf")
    height, width = values[4], values[5]
    if not (height >= 1 and width >= 1 and height == int(height) and width == int(width)):
        raise ViewError(
            f"{path}: height and width (the last two intrinsic numbers) must be whole numbers of pixels, "
            f"at least 1; found {height:g} and {width:g}"
        )
    return w2c, torch.tensor(values[:4], dtype=torch.float64), (int(height), int(width))


def load_gtr_release(folder: Path, background: Background = None) -> ViewSet:
    """A folder of ``rgb_NNN.png`` + ``cam_NNN.txt`` pairs -> ViewSet (intrinsics rescaled to the real size)."""
    images = {m.group(1): p for p in folder.glob("rgb_*.png") if (m := re.fullmatch(r"rgb_(\d+)\.png", p.name))}
    cameras = {m.group(1): p for p in folder.glob("cam_*.txt") if (m := re.fullmatch(r"cam_(\d+)\.txt", p.name))}
    if not images and not cameras:
        raise ViewError(f"{folder}: no rgb_NNN.png / cam_NNN.txt pairs found")
    unpaired = sorted(set(images) ^ set(cameras), key=int)
    if unpaired:
        missing = f"cam_{unpaired[0]}.txt" if unpaired[0] in images else f"rgb_{unpaired[0]}.png"
        raise ViewError(f"{folder}: {missing} is missing: every rgb_NNN.png needs its cam_NNN.txt and back")
    loaded, intrinsics, poses, names = [], [], [], []
    for key in sorted(images, key=int):
        rgb, mask = read_view(images[key], None, background)
        w2c, k, (height, width) = parse_gtr_camera(cameras[key])
        h, w = rgb.shape[1:]
        k = k * torch.tensor([w / width, h / height, w / width, h / height], dtype=torch.float64)
        loaded.append((rgb, mask))
        intrinsics.append(k)
        poses.append(invert_pose(w2c, str(cameras[key])))
        names.append(images[key].name)
    rgbs, masks = stack_views(loaded, names)
    return ViewSet.from_tensors(rgbs, masks, torch.stack(intrinsics), torch.stack(poses), names)


def save_gtr_release(views: ViewSet, folder: Path) -> None:
    """Write `views` in the released GTR format (``rgb_NNN.png`` + ``cam_NNN.txt``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(views.num_views):
        write_rgba(folder / f"rgb_{i:03d}.png", views.rgb[i], views.mask[i])
        w2c = torch.linalg.inv(views.c2w[i].double())
        rows = "\n".join(" ".join(f"{v:.10g}" for v in row) for row in w2c.tolist())
        fx, fy, cx, cy = views.intrinsics[i].tolist()
        atomic_write(
            folder / f"cam_{i:03d}.txt",
            f"extrinsic\n{rows}\n\nintrinsic fx, fy, cx, cy, height, width\n"
            f"{fx:.10g} {fy:.10g} {cx:.10g} {cy:.10g} {views.height} {views.width}\n",
        )


# ---------------------------------------------------------------------------------------------------------------
# 3. Zero123++ grid.


def zero123pp_poses() -> Tensor:
    """c2w (6, 4, 4) of the Zero123++ grid views (elevation = 90 - polar)."""
    return orbit_poses(ZERO123PP_AZIMUTH_DEG, [90.0 - t for t in ZERO123PP_POLAR_DEG], ZERO123PP_DISTANCE)


def load_zero123pp_grid(path: Path, background: Background = None) -> ViewSet:
    """A 3-row x 2-column grid image (each cell square, 320x320 as released) -> 6-view ViewSet."""
    array = read_image(path, max_side=None)  # the grid's cells must keep their exact layout
    h, w = array.shape[:2]
    cell = w // 2
    if w % 2 or h != 3 * cell:
        raise ViewError(
            f"{path}: a Zero123++ grid is 2 cells wide and 3 high with square cells "
            f"(640x960 as released), but this image is {w}x{h}"
        )
    views, names = [], []
    for i in range(6):
        row, col = divmod(i, 2)
        label = f"cell {i}, row {row}, column {col}"
        names.append(f"{path.name} ({label})")
        views.append(
            split_rgba(
                array[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell],
                f"{path}, {label}",
                None,
                background,
            )
        )
    rgbs, masks = stack_views(views, names)
    k = intrinsics_from_fov(ZERO123PP_FOV_DEG, cell, cell).expand(6, 4)
    return ViewSet.from_tensors(rgbs, masks, k, zero123pp_poses(), names)


# ---------------------------------------------------------------------------------------------------------------
# 4. Plain images on an orbit.


def load_orbit(images: Sequence[Path], orbit: Orbit, background: Background = None) -> ViewSet:
    """Images in azimuth order, with cameras from `orbit` -> ViewSet."""
    if not images:
        raise ViewError("no images given for the orbit preset")
    loaded = [read_view(p, None, background) for p in images]
    names = [p.name for p in images]
    rgbs, masks = stack_views(loaded, names)
    k = intrinsics_from_fov(orbit.fov_deg, rgbs.shape[3], rgbs.shape[2]).expand(len(images), 4)
    return ViewSet.from_tensors(rgbs, masks, k, orbit.poses(len(images)), names)


# ---------------------------------------------------------------------------------------------------------------


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def own_cameras(path: Path) -> str | None:
    """The file that gives `path` its own cameras (``cameras.json``, ``cam_NNN.txt``), or None if it has none."""
    if path.is_dir():
        if (path / CAMERAS_JSON).exists():  # a file, or something in its place that loading will name
            return CAMERAS_JSON
        if any(path.glob("cam_*.txt")):
            return "cam_NNN.txt"
    elif path.suffix.lower() == ".json":
        return path.name
    return None


def load_views(
    path: Path | str, *, orbit: Orbit | None = None, zero123pp: bool = False, background: Background = None
) -> ViewSet:
    """Load a view set, choosing the format from what is there.

    - a folder with ``cameras.json``, or that file itself: the project format;
    - a folder with ``cam_NNN.txt`` files: the released GTR format;
    - an image with ``zero123pp=True``: a Zero123++ grid;
    - a folder of images, or one image, with an `Orbit`: orbit cameras (images in name order).
    """
    problem = name_problem(path, "view set")
    if problem:
        raise ViewError(problem)
    path = Path(path)
    if not path.exists():
        raise ViewError(f"{path}: no such file or folder")
    if zero123pp:
        return load_zero123pp_grid(path, background)
    if path.is_dir():
        cameras = own_cameras(path)
        if cameras == CAMERAS_JSON:
            return load_project_folder(path, background)
        if cameras is not None:
            return load_gtr_release(path, background)
        images = list_images(path)
        if orbit is not None and images:
            return load_orbit(images, orbit, background)
        raise ViewError(
            f"{path}: found no {CAMERAS_JSON} and no cam_NNN.txt files, so the cameras are unknown; "
            "add a cameras.json (see docs/command-line.md, 'View sets') or use the orbit preset (--orbit) "
            f"for {len(images)} image(s) taken around the object"
        )
    if path.suffix.lower() == ".json":
        return load_project_folder(path, background)
    if orbit is not None:
        return load_orbit([path], orbit, background)
    raise ViewError(f"{path}: a single image needs --zero123pp (a 3x2 grid) or --orbit (cameras on an orbit)")
