"""Exactly known view sets: an analytic sphere seen from an orbit (the server's warm-up runs the kernels on it; tests
and benchmarks check renders and masks against it).

`sphere_views` ray-traces a sphere (centre, radius in the world frame) through each camera: the mask is the
pixel-centre ray's hit test, the colour is 0.5 + 0.5 * the surface normal, and `sphere_hits` returns the
analytic distance along each ray, so renders and masks can be checked against ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..contract import ORBIT_AZIMUTHS_DEG, ORBIT_DISTANCE, ORBIT_ELEVATION_DEG
from .cameras import intrinsics_from_fov, orbit_poses
from .rays import pixel_rays
from .viewset import ViewSet


def sphere_hits(origins: Tensor, directions: Tensor, centre: Sequence[float], radius: float) -> Tensor:
    """(..., 3) rays with unit directions -> (...,) distance to the first hit, +inf where the ray misses."""
    oc = origins - torch.as_tensor(centre, dtype=origins.dtype, device=origins.device)
    b = (oc * directions).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - radius * radius)
    t = -b - torch.sqrt(disc.clamp_min(0))
    return torch.where((disc >= 0) & (t > 0), t, torch.full_like(t, float("inf")))


def sphere_views(
    azimuths_deg: Sequence[float] = ORBIT_AZIMUTHS_DEG,
    elevation_deg: float = ORBIT_ELEVATION_DEG,
    distance: float = ORBIT_DISTANCE,
    fov_deg: float = 30.0,
    size: int = 64,
    centre: Sequence[float] = (0.0, 0.0, 0.0),
    radius: float = 0.6,
) -> ViewSet:
    """A ViewSet of an analytic sphere coloured by its normals, one view per azimuth."""
    n = len(azimuths_deg)
    c2w = orbit_poses(azimuths_deg, elevation_deg, distance)
    k = intrinsics_from_fov(fov_deg, size, size).expand(n, 4)
    origins, directions = pixel_rays(k, c2w, size, size)
    t = sphere_hits(origins, directions, centre, radius)
    hit = torch.isfinite(t)
    points = origins + directions * torch.where(hit, t, torch.zeros_like(t))[..., None]
    normals = (points - torch.as_tensor(centre, dtype=points.dtype)) / radius
    rgb = torch.where(hit[..., None], 0.5 + 0.5 * normals, torch.ones_like(normals)).clamp(0, 1)
    return ViewSet.from_tensors(
        rgb.permute(0, 3, 1, 2), hit[:, None].to(rgb.dtype), k, c2w, [f"sphere_az{a:g}" for a in azimuths_deg]
    )
