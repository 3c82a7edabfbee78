"""Training views: rendered on the device (no disk), or read from a dataset folder on disk.

Each training asset is `input_views` orbit cameras (azimuths offset + 0/90/180/270 at one random elevation)
plus `supervision_views` random cameras. A training step draws assets; the model sees the input views and is
supervised on the others. Three sources, one interface (`len`, `batch(indices)`):
- `RenderedPool(seeds, ...)`: procedural objects rendered once on the training device and kept there (8-bit);
- `StreamingPool(seeds, ...)`: procedural objects rendered on the fly for every batch (any number of them);
- `RenderedPool.from_folder(root)`: a dataset folder on disk, e.g. written by `write_dataset` (`gtr dataset`),
  or renders of Objaverse made elsewhere in the same format.

Dataset folder format: one sub-folder per asset, each a view folder the backend reads (RGBA PNGs and
`cameras.json`, "gtr-views/1", OpenCV camera-to-world, world +Y up, the object inside [-1, 1]^3; the first
`input_views` views are the input views), optionally with `depth.npy` (V, H, W) float16 camera-space depth
(0 off the object) and `normals.npy` (V, H, W, 3) float16 world normals. `dataset.json` at the root records
the sampling. The loader reads them with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gtr_backend.contract import ORBIT_DISTANCE, ORBIT_FOV_DEG, VIEW_RADIUS
from gtr_backend.errors import GTRError
from gtr_backend.mesh.mesh import Mesh
from gtr_backend.pixels import to_uint8
from gtr_backend.render.mesh_render import render_mesh
from gtr_backend.render.raster import Rasterizer, get_rasterizer
from gtr_backend.views import ViewSet, load_views, save_views
from gtr_backend.views.cameras import intrinsics_from_fov, orbit_poses
from gtr_backend.views.loaders import ZERO123PP_DISTANCE, ZERO123PP_FOV_DEG, ZERO123PP_POLAR_DEG

from ..synthetic.objects import ProceduralObject, render_object
from .procedural import random_object


def at_least(options: Any, **lowest: float) -> None:
    """A `GTRError` naming the first of these fields of `options` that is not a finite number at least its
    lowest value (the training options and the view sampling check themselves with it)."""
    for name, low in lowest.items():
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < low:
            raise GTRError(f"{name} must be a number of at least {low:g}, got {value!r}")


def ordered_pair(options: Any, *names: str) -> None:
    """A `GTRError` unless each of these fields is two numbers, low then high."""
    for name in names:
        value = getattr(options, name)
        numbers = isinstance(value, tuple | list) and all(isinstance(v, int | float) for v in value)
        if not numbers or len(value) != 2 or not all(math.isfinite(v) for v in value) or value[0] > value[1]:
            raise GTRError(f"{name} must be two numbers, the lowest then the highest, got {value!r}")


def from_json_fields(kind: Any, data: dict[str, Any], what: str) -> Any:
    """A (frozen) dataclass from its fields as JSON stores them: lists back to tuples, an unknown field a
    `GTRError` (`what` names the kind in the message)."""
    unknown = sorted(set(data) - {f.name for f in fields(kind)})
    if unknown:
        raise GTRError(f"unknown {what} field(s) {', '.join(unknown)}")
    return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


INPUT_RIGS = ("orbit", "lens", "zero123pp")
ZERO123PP_ELEVATIONS_DEG = (90.0 - ZERO123PP_POLAR_DEG[0], 90.0 - ZERO123PP_POLAR_DEG[1])  # 20 and -10, alternating


@dataclass(frozen=True)
class ViewSampling:
    """How one training asset's views are drawn: `input_views` cameras the model sees, then `supervision_views`
    random cameras it is scored on (at `distance`, `fov_deg`, elevations in `supervision_elevation_deg`).

    The input cameras follow a rig drawn per asset from `input_rigs` (see `input_cameras`): "orbit" (equal steps
    at one elevation, at `distance` and `fov_deg`: the add-on's capture and `--orbit`), "lens" (other lenses, the
    distance that fills the frame alike, jittered azimuths and elevations: photos taken around an object) and
    "zero123pp" (its distance, lens and alternating elevations; `input_views` a quarter-turn apart for 4, where
    Zero123++'s own 6 are 60 degrees apart). With `input_light` > 0, that share of the assets has input views
    lit by a random directional light plus ambient (`Light`), as a Blender capture under a white world looks
    (in `write_dataset` too); supervision views always keep the plain colours."""

    size: int = 256
    input_views: int = 4
    supervision_views: int = 8
    distance: float = ORBIT_DISTANCE
    fov_deg: float = ORBIT_FOV_DEG
    input_elevation_deg: tuple[float, float] = (0.0, 30.0)
    supervision_elevation_deg: tuple[float, float] = (-20.0, 60.0)
    input_rigs: tuple[str, ...] = ("orbit",)  # drawn with equal odds per asset
    lens_fov_deg: tuple[float, float] = (20.0, 60.0)  # the "lens" rig's field of view
    lens_elevation_deg: tuple[float, float] = (-10.0, 45.0)  # the "lens" rig's elevations, drawn per view
    azimuth_jitter_deg: float = 15.0  # the "lens" rig: each input view's azimuth off its equal step, at most
    input_light: float = 0.0  # the share of assets whose input views are lit (0: none, 1: all)

    def __post_init__(self) -> None:
        at_least(self, size=16, input_views=1, supervision_views=1, distance=0.1, fov_deg=1, azimuth_jitter_deg=0)
        ordered_pair(self, "input_elevation_deg", "supervision_elevation_deg", "lens_fov_deg", "lens_elevation_deg")
        if self.fov_deg >= 170 or not 1 <= self.lens_fov_deg[0] <= self.lens_fov_deg[1] < 170:
            raise GTRError(f"fields of view must be 1 to 170 degrees, got {self.fov_deg} and {self.lens_fov_deg}")
        unknown = [rig for rig in self.input_rigs if rig not in INPUT_RIGS]
        if unknown or not self.input_rigs:
            raise GTRError(f"unknown input rig(s) {', '.join(unknown) or '(none given)'}; use {', '.join(INPUT_RIGS)}")
        if not 0.0 <= self.input_light <= 1.0:
            raise GTRError(f"input_light is a share of the assets, between 0 and 1; got {self.input_light}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViewSampling:
        """From `dataclasses.asdict` as JSON stores it; a field left out keeps its default (dataset folders written
        before it existed)."""
        return from_json_fields(cls, data, "view-sampling")


def filling_distance(fov_deg: float) -> float:
    """The camera distance at which a lens of `fov_deg` frames the working sphere as the orbit's lens does at
    ORBIT_DISTANCE; never so close that the sphere of VIEW_RADIUS leaves the view."""
    half, orbit_half = math.radians(fov_deg) / 2, math.radians(ORBIT_FOV_DEG) / 2
    return max(ORBIT_DISTANCE * math.tan(orbit_half) / math.tan(half), 1.05 * VIEW_RADIUS / math.sin(half))


def input_cameras(
    rig: str, sampling: ViewSampling, rng: np.random.Generator
) -> tuple[list[float], list[float], list[float], float]:
    """One rig's input views: azimuths, elevations (degrees), per-view fields of view and the distance."""
    s, n = sampling, sampling.input_views
    offset = rng.uniform(0, 360)
    steps = [offset + 360.0 * i / n for i in range(n)]
    if rig == "zero123pp":
        return steps, [ZERO123PP_ELEVATIONS_DEG[i % 2] for i in range(n)], [ZERO123PP_FOV_DEG] * n, ZERO123PP_DISTANCE
    if rig == "lens":
        fov = rng.uniform(*s.lens_fov_deg)
        azimuths = [a + rng.uniform(-s.azimuth_jitter_deg, s.azimuth_jitter_deg) for a in steps]
        elevations = list(rng.uniform(*s.lens_elevation_deg, n))
        return azimuths, elevations, [fov] * n, filling_distance(fov) * rng.uniform(1.0, 1.25)
    return steps, [rng.uniform(*s.input_elevation_deg)] * n, [s.fov_deg] * n, s.distance


def asset_cameras(seed: int, sampling: ViewSampling, device: torch.device) -> tuple[Tensor, Tensor]:
    """(intrinsics (V, 4), c2w (V, 4, 4)) of one asset's input then supervision views, seeded. (With the default
    rig, "orbit", the cameras are those the shipped weights were trained on.)"""
    s = sampling
    rng = np.random.default_rng(10_000_019 + seed)
    rig = s.input_rigs[0] if len(s.input_rigs) == 1 else str(_choice(seed, 1).choice(s.input_rigs))
    azimuths, elevations, fovs, distance = input_cameras(rig, s, rng)
    supervision_azimuths = list(rng.uniform(0, 360, s.supervision_views))
    supervision_elevations = list(rng.uniform(*s.supervision_elevation_deg, s.supervision_views))
    fovs += [s.fov_deg] * s.supervision_views
    k = torch.cat([intrinsics_from_fov(fov, s.size, s.size).float().reshape(1, 4) for fov in fovs]).to(device)
    inputs = orbit_poses(azimuths, elevations, distance)
    supervision = orbit_poses(supervision_azimuths, supervision_elevations, s.distance)
    return k, torch.cat([inputs, supervision]).float().to(device)


def _choice(seed: int, stream: int) -> np.random.Generator:
    """A generator of its own for each choice made about an asset (rig, light), so that adding one leaves the
    others' draws, and the default cameras, as they were."""
    return np.random.default_rng([seed, stream, 7_368_787])


@dataclass(frozen=True)
class Light:
    """A directional light plus ambient: colour x (ambient + (1 - ambient) max(0, n . direction))."""

    direction: tuple[float, float, float]  # world frame (Y up), towards the light, unit length
    ambient: float


def asset_light(seed: int, sampling: ViewSampling) -> Light | None:
    """The light of one asset's input views (None: unlit), seeded: from above the horizon (elevation 15 to 75
    degrees, any azimuth), ambient 0.45 to 0.85 (a white world's fill)."""
    rng = _choice(seed, 2)
    if rng.uniform() >= sampling.input_light:
        return None
    azimuth, elevation = np.radians(rng.uniform(0, 360)), np.radians(rng.uniform(15, 75))
    direction = (
        float(np.cos(elevation) * np.sin(azimuth)),
        float(np.sin(elevation)),
        float(np.cos(elevation) * np.cos(azimuth)),
    )
    return Light(direction, float(rng.uniform(0.45, 0.85)))


def light_views(views: ViewSet, normals: Tensor, light: Light, count: int) -> ViewSet:
    """`views` with the first `count` lit by `light`. normals (count, 3, H, W): world normals of those views (zero
    off the object), turned here to face their camera; pixels without a normal keep their colour."""
    n = normals
    forward = views.c2w[:count, :3, 2][:, :, None, None]  # OpenCV: the camera looks along its +z
    n = torch.where((n * forward).sum(1, keepdim=True) > 0, -n, n)
    towards = torch.tensor(light.direction, device=n.device, dtype=n.dtype)[None, :, None, None]
    factor = light.ambient + (1 - light.ambient) * (n * towards).sum(1, keepdim=True).clamp_min(0)
    factor = torch.where(normals.norm(dim=1, keepdim=True) > 0.5, factor, torch.ones_like(factor))
    rgb = views.rgb.clone()
    rgb[:count] = rgb[:count] * factor
    return ViewSet.from_tensors(rgb, views.mask, views.intrinsics, views.c2w, views.names)


def render_procedural(
    seed: int,
    sampling: ViewSampling,
    device: torch.device,
    rasterizer: Rasterizer,
    obj: ProceduralObject | None = None,
) -> ViewSet:
    """One procedural asset's views (input then supervision), its input views lit if `asset_light` says so.
    `obj`: `random_object(seed)` when the caller has built it already (it takes most of the time)."""
    k, c2w = asset_cameras(seed, sampling, device)
    obj = obj or random_object(seed)
    views = render_object(obj, k, c2w, sampling.size, sampling.size, rasterizer, supersample=1)
    light = asset_light(seed, sampling)
    if light is None:
        return views
    n = sampling.input_views
    geometry = render_mesh(obj.mesh.to(device), k[:n], c2w[:n], sampling.size, sampling.size, rasterizer, None, False)
    return light_views(views, geometry.normals, light, n)


def procedural_depth(
    seed: int,
    sampling: ViewSampling,
    device: torch.device,
    rasterizer: Rasterizer,
    obj: ProceduralObject | None = None,
) -> Tensor:
    """Camera-space depth (V, 1, S, S) of a procedural object's views, 0 off the object (`obj` as above)."""
    k, c2w = asset_cameras(seed, sampling, device)
    mesh = (obj or random_object(seed)).mesh.to(device)
    out = render_mesh(mesh, k, c2w, sampling.size, sampling.size, rasterizer, background=None, antialias=False)
    return out.depth * out.fragments.mask[:, None].to(out.depth.dtype)


def _rgba8(views: ViewSet) -> Tensor:
    return to_uint8(torch.cat([views.rgb, views.mask], dim=1))


class RenderedPool:
    """rgba (N, V, 4, S, S) uint8, intrinsics (N, V, 4), c2w (N, V, 4, 4); the first `input_views` are inputs."""

    def __init__(
        self,
        seeds: Sequence[int],
        sampling: ViewSampling,
        device: torch.device | str,
        rasterizer: Rasterizer | None = None,
        with_depth: bool = False,
    ) -> None:
        self.sampling = sampling
        device = torch.device(device)
        rasterizer = rasterizer or get_rasterizer(device)
        rgba, c2w, intrinsics, depth = [], [], [], []
        for seed in seeds:
            obj = random_object(seed)
            views = render_procedural(seed, sampling, device, rasterizer, obj)
            rgba.append(_rgba8(views))
            c2w.append(views.c2w)
            intrinsics.append(views.intrinsics)
            if with_depth:
                depth.append(procedural_depth(seed, sampling, device, rasterizer, obj).half())
        self.rgba, self.c2w, self.intrinsics = torch.stack(rgba), torch.stack(c2w), torch.stack(intrinsics)
        self.depth: Tensor | None = torch.stack(depth) if with_depth else None

    @classmethod
    def from_folder(
        cls, root: Path, device: torch.device | str, size: int | None = None, limit: int | None = None
    ) -> RenderedPool:
        """Every asset of a dataset folder (see the module docstring), resized to `size` (default: as written)."""
        info_path = root / "dataset.json"
        if not info_path.is_file():
            raise GTRError(f"{root}: not a dataset folder (no dataset.json); write one with `gtr dataset`")
        sampling = ViewSampling.from_dict(json.loads(info_path.read_text())["sampling"])
        if size is not None:
            sampling = replace(sampling, size=size)
        folders = sorted(p for p in root.iterdir() if (p / "cameras.json").is_file())[:limit]
        if not folders:
            raise GTRError(f"{root}: holds no assets (sub-folders with cameras.json)")
        pool = cls.__new__(cls)
        pool.sampling = sampling
        loaded = [load_views(folder).resized(sampling.size).to(device) for folder in folders]
        expected = sampling.input_views + sampling.supervision_views
        wrong = [f.name for f, v in zip(folders, loaded, strict=True) if v.num_views != expected]
        if wrong:
            raise GTRError(f"{root}: assets {', '.join(wrong[:3])} do not have {expected} views as dataset.json says")
        pool.rgba = torch.stack([_rgba8(v) for v in loaded])
        pool.c2w = torch.stack([v.c2w for v in loaded])
        pool.intrinsics = torch.stack([v.intrinsics for v in loaded])
        depths = [read_depth(folder) for folder in folders]
        pool.depth = None
        if all(d is not None for d in depths):
            resized = [
                torch.nn.functional.interpolate(d[:, None], size=sampling.size, mode="nearest")  # type: ignore[index]
                for d in depths
            ]
            pool.depth = torch.stack(resized).to(device).half()
        return pool

    def __len__(self) -> int:
        return int(self.rgba.shape[0])

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(rgba float (B, V, 4, S, S) in [0, 1], intrinsics (B, V, 4), c2w (B, V, 4, 4)) of some objects."""
        return self.rgba[indices].float() / 255, self.intrinsics[indices], self.c2w[indices]

    def depth_batch(self, indices: Tensor) -> Tensor | None:
        """Depth (B, V, 1, S, S) of some objects (0 off the object), or None if the pool has none."""
        return None if self.depth is None else self.depth[indices].float()


class StreamingPool:
    """Procedural objects rendered on the fly, on the training device, for every batch: no pool in memory and
    no disk, so the number of distinct objects is only limited by `seeds`."""

    def __init__(
        self, seeds: range, sampling: ViewSampling, device: torch.device | str, rasterizer: Rasterizer | None = None
    ) -> None:
        self.seeds, self.sampling, self.device = seeds, sampling, torch.device(device)
        self.rasterizer = rasterizer or get_rasterizer(self.device)

    def __len__(self) -> int:
        return len(self.seeds)

    def depth_batch(self, indices: Tensor) -> Tensor | None:
        seeds = [self.seeds[int(i)] for i in indices]
        return torch.stack([procedural_depth(s, self.sampling, self.device, self.rasterizer) for s in seeds])

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        views = [render_procedural(self.seeds[int(i)], self.sampling, self.device, self.rasterizer) for i in indices]
        rgba = torch.stack([torch.cat([v.rgb, v.mask], dim=1) for v in views])
        return rgba, torch.stack([v.intrinsics for v in views]), torch.stack([v.c2w for v in views])


def write_dataset(
    assets: Sequence[ProceduralObject | tuple[str, Mesh]],
    root: Path,
    sampling: ViewSampling,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Render assets (procedural objects, or (name, textured mesh) scaled into the working sphere of radius
    0.8) into a dataset folder: views + cameras.json + depth.npy + normals.npy per asset, and dataset.json."""
    device = torch.device(device)
    rasterizer = get_rasterizer(device)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"format": "gtr-dataset/1", "sampling": asdict(sampling)}, indent=2))
    written = []
    for index, asset in enumerate(assets):
        name, mesh = (asset.name, asset.mesh) if isinstance(asset, ProceduralObject) else asset
        k, c2w = asset_cameras(index, sampling, device)
        size = sampling.size
        geometry = render_mesh(mesh.to(device), k, c2w, size, size, rasterizer, background=None)
        if isinstance(asset, ProceduralObject):
            views = render_object(asset, k, c2w, size, size, rasterizer)
        else:
            alpha = geometry.alpha.clamp(0, 1)
            rgb = torch.where(alpha > 0, geometry.rgb / alpha.clamp_min(1e-6), torch.ones_like(geometry.rgb))
            views = ViewSet.from_tensors(rgb.clamp(0, 1), alpha, k, c2w)
        light = asset_light(index, sampling)
        if light is not None:
            n = sampling.input_views
            views = light_views(views, geometry.normals[:n], light, n)
        folder = root / f"{index:06d}_{name}"
        save_views(views, folder)
        covered = geometry.fragments.mask.cpu().numpy()
        np.save(folder / "depth.npy", (geometry.depth[:, 0].cpu().numpy() * covered).astype(np.float16))
        np.save(folder / "normals.npy", (geometry.normals.permute(0, 2, 3, 1).cpu().numpy()).astype(np.float16))
        written.append(folder)
        if progress:
            progress(index + 1, len(assets))
    return written


def read_depth(folder: Path) -> Tensor | None:
    """An asset's depth maps (V, H, W) float32, or None when it has none."""
    path = folder / "depth.npy"
    return torch.from_numpy(np.load(path, allow_pickle=False).astype(np.float32)) if path.is_file() else None
