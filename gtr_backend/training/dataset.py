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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import GTRError
from ..mesh.mesh import Mesh
from ..pixels import to_uint8
from ..render.mesh_render import render_mesh
from ..render.raster import Rasterizer, get_rasterizer
from ..synthetic.objects import ProceduralObject, render_object
from ..views import ViewSet, load_views, save_views
from ..views.cameras import intrinsics_from_fov, orbit_poses
from .procedural import random_object


@dataclass(frozen=True)
class ViewSampling:
    size: int = 256
    input_views: int = 4
    supervision_views: int = 8
    distance: float = 2.7
    fov_deg: float = 40.0
    input_elevation_deg: tuple[float, float] = (0.0, 30.0)
    supervision_elevation_deg: tuple[float, float] = (-20.0, 60.0)


def asset_cameras(seed: int, sampling: ViewSampling, device: torch.device) -> tuple[Tensor, Tensor]:
    """(intrinsics (V, 4), c2w (V, 4, 4)) of one asset's input then supervision views, seeded."""
    s = sampling
    rng = np.random.default_rng(10_000_019 + seed)
    offset = rng.uniform(0, 360)
    azimuths = [offset + 360.0 * i / s.input_views for i in range(s.input_views)]
    elevations = [rng.uniform(*s.input_elevation_deg)] * s.input_views
    azimuths += list(rng.uniform(0, 360, s.supervision_views))
    elevations += list(rng.uniform(*s.supervision_elevation_deg, s.supervision_views))
    total = s.input_views + s.supervision_views
    k = intrinsics_from_fov(s.fov_deg, s.size, s.size).float().to(device).expand(total, 4)
    return k, orbit_poses(azimuths, elevations, s.distance).float().to(device)


def render_procedural(seed: int, sampling: ViewSampling, device: torch.device, rasterizer: Rasterizer) -> ViewSet:
    k, c2w = asset_cameras(seed, sampling, device)
    return render_object(random_object(seed), k, c2w, sampling.size, sampling.size, rasterizer, supersample=1)


def procedural_depth(seed: int, sampling: ViewSampling, device: torch.device, rasterizer: Rasterizer) -> Tensor:
    """Camera-space depth (V, 1, S, S) of a procedural object's views, 0 off the object."""
    k, c2w = asset_cameras(seed, sampling, device)
    mesh = random_object(seed).mesh.to(device)
    out = render_mesh(mesh, k, c2w, sampling.size, sampling.size, rasterizer, background=None, antialias=False)
    return out.depth * out.fragments.mask[:, None].to(out.depth.dtype)


def _rgba8(views: ViewSet) -> Tensor:
    return to_uint8(torch.cat([views.rgb, views.mask], dim=1))


class RenderedPool:
    """rgba (N, V, 4, S, S) uint8, intrinsics (N, V, 4), c2w (N, V, 4, 4); the first `input_views` are inputs."""

    def __init__(
        self,
        seeds: range,
        sampling: ViewSampling,
        device: torch.device | str,
        rasterizer: Rasterizer | None = None,
        with_depth: bool = False,
    ) -> None:
        self.sampling = sampling
        device = torch.device(device)
        rasterizer = rasterizer or get_rasterizer(device)
        views = [render_procedural(seed, sampling, device, rasterizer) for seed in seeds]
        self.rgba = torch.stack([_rgba8(v) for v in views])
        self.c2w = torch.stack([v.c2w for v in views])
        self.intrinsics = torch.stack([v.intrinsics for v in views])
        self.depth: Tensor | None = None
        if with_depth:
            self.depth = torch.stack([procedural_depth(seed, sampling, device, rasterizer) for seed in seeds]).half()

    @classmethod
    def from_folder(
        cls, root: Path, device: torch.device | str, size: int | None = None, limit: int | None = None
    ) -> RenderedPool:
        """Every asset of a dataset folder (see the module docstring), resized to `size` (default: as written)."""
        info_path = root / "dataset.json"
        if not info_path.is_file():
            raise GTRError(f"{root}: not a dataset folder (no dataset.json); write one with `gtr dataset`")
        raw: dict[str, Any] = json.loads(info_path.read_text())["sampling"]
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        sampling = ViewSampling(**fields)
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
