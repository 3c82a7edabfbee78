"""Training views rendered from procedural objects, kept on the training device.

`RenderedPool` renders every object once from `input_views` orbit cameras (4 at azimuths offset + 0/90/180/270,
a random elevation) and `supervision_views` random cameras, storing 8-bit RGBA on the device. A training step
draws objects from the pool; the model sees the input views and is supervised on rays of the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..render.raster import Rasterizer, get_rasterizer
from ..synthetic.objects import render_object
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


class RenderedPool:
    """rgba (N, V, 4, S, S) uint8, intrinsics (N, V, 4), c2w (N, V, 4, 4); the first `input_views` are inputs."""

    def __init__(
        self, seeds: range, sampling: ViewSampling, device: torch.device | str, rasterizer: Rasterizer | None = None
    ) -> None:
        self.sampling = sampling
        device = torch.device(device)
        rasterizer = rasterizer or get_rasterizer(device)
        s = sampling
        total = s.input_views + s.supervision_views
        k = intrinsics_from_fov(s.fov_deg, s.size, s.size).float().to(device).expand(total, 4)
        rgba, poses = [], []
        for seed in seeds:
            rng = np.random.default_rng(10_000_019 + seed)
            offset = rng.uniform(0, 360)
            azimuths = [offset + 360.0 * i / s.input_views for i in range(s.input_views)]
            elevations = [rng.uniform(*s.input_elevation_deg)] * s.input_views
            azimuths += list(rng.uniform(0, 360, s.supervision_views))
            elevations += list(rng.uniform(*s.supervision_elevation_deg, s.supervision_views))
            c2w = orbit_poses(azimuths, elevations, s.distance).float().to(device)
            views = render_object(random_object(seed), k, c2w, s.size, s.size, rasterizer, supersample=1)
            image = torch.cat([views.rgb, views.mask], dim=1)
            rgba.append((image * 255).round().to(torch.uint8))
            poses.append(c2w)
        self.rgba = torch.stack(rgba)
        self.c2w = torch.stack(poses)
        self.intrinsics = k[None].expand(len(rgba), total, 4)

    def __len__(self) -> int:
        return int(self.rgba.shape[0])

    def batch(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(rgba float (B, V, 4, S, S) in [0, 1], intrinsics (B, V, 4), c2w (B, V, 4, 4)) of some objects."""
        return self.rgba[indices].float() / 255, self.intrinsics[indices], self.c2w[indices]
