"""NeRF volume rendering of a density/colour field (training stage 1, and previews of a triplane).

Rays (world frame) are clipped to the box [-1, 1]^3 with near >= 0.2 (docs/method.md, section 3); each is sampled at
`num_samples` uniform points (bin midpoints, or jittered within bins when `stratified`), and alpha-composited
front to back: alpha_i = 1 - exp(-density_i * delta_i), weight_i = alpha_i * prod_{j<i}(1 - alpha_j).

Outputs per ray (`render_rays`): rgb (composited over `background`, white by default), opacity = sum of
weights, and distance = the opacity-normalised expected distance along the unit ray direction (0 where nothing
is hit). Images (`render_views`) report depth as the camera-space z (OpenCV, the usual depth map), the same
quantity the mesh rasterizer gives. The field is queried `chunk_points` points at a time, so memory stays
bounded whatever the image size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model.fields import TriplaneField
from ..views.rays import pixel_rays

# points (P, 3) -> density (P, 1), rgb (P, 3)
FieldFn = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class VolumeOptions:
    num_samples: int = 256
    near: float = 0.2
    bound: float = 1.0  # the box [-bound, bound]^3
    chunk_points: int = 1 << 18  # field points per query: about 0.3 GB of float32 work at a time
    background: float | None = 1.0  # None: no background (rgb is premultiplied by opacity)
    stratified: bool = False  # jitter samples within their bins (training)


@dataclass(frozen=True)
class VolumeRender:
    """rgb (N, 3, H, W), opacity (N, 1, H, W), depth (N, 1, H, W): camera-space z, 0 where nothing is hit."""

    rgb: Tensor
    opacity: Tensor
    depth: Tensor


def clip_rays_to_box(origins: Tensor, directions: Tensor, bound: float, near: float) -> tuple[Tensor, Tensor]:
    """(R, 3), (R, 3) -> t_near (R,), t_far (R,) of each ray inside [-bound, bound]^3 (t_far <= t_near: miss)."""
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t0, t1 = (-bound - origins) / safe, (bound - origins) / safe
    t_near = torch.minimum(t0, t1).amax(dim=-1).clamp_min(near)
    t_far = torch.maximum(t0, t1).amin(dim=-1)
    return t_near, t_far


def render_rays(
    field: FieldFn, origins: Tensor, directions: Tensor, options: VolumeOptions = VolumeOptions()
) -> tuple[Tensor, Tensor, Tensor]:
    """origins, directions (R, 3) -> rgb (R, 3), opacity (R, 1), distance along the ray (R, 1)."""
    s = options.num_samples
    chunk = max(1, options.chunk_points // s)
    outputs = [
        _render_chunk(field, origins[i : i + chunk], directions[i : i + chunk], options)
        for i in range(0, origins.shape[0], chunk)
    ]
    rgb, opacity, depth = (torch.cat(parts) for parts in zip(*outputs, strict=True))
    return rgb, opacity, depth


def _render_chunk(
    field: FieldFn, origins: Tensor, directions: Tensor, options: VolumeOptions
) -> tuple[Tensor, Tensor, Tensor]:
    r, s = origins.shape[0], options.num_samples
    t_near, t_far = clip_rays_to_box(origins, directions, options.bound, options.near)
    hit = t_far > t_near
    span = torch.where(hit, t_far - t_near, torch.zeros_like(t_far))
    offsets = torch.arange(s, device=origins.device, dtype=origins.dtype)
    offsets = offsets + (torch.rand(r, s, device=origins.device) if options.stratified else 0.5)
    t = t_near[:, None] + span[:, None] * offsets / s  # (R, S)
    delta = (span / s)[:, None].expand(r, s)
    points = origins[:, None] + directions[:, None] * t[..., None]  # (R, S, 3)
    density, colour = field(points.reshape(-1, 3))
    density = density.reshape(r, s) * hit[:, None]
    alpha = 1 - torch.exp(-density * delta)
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1] + 1e-10], 1), 1)
    weights = alpha * transmittance  # (R, S)
    opacity = weights.sum(dim=1, keepdim=True)
    rgb = (weights[..., None] * colour.reshape(r, s, 3)).sum(dim=1)
    if options.background is not None:
        rgb = rgb + (1 - opacity) * options.background
    depth = (weights * t).sum(dim=1, keepdim=True)
    depth = torch.where(opacity > 1e-4, depth / opacity.clamp_min(1e-4), torch.zeros_like(depth))
    return rgb, opacity, depth


def render_views(
    field: FieldFn, intrinsics: Tensor, c2w: Tensor, height: int, width: int, options: VolumeOptions = VolumeOptions()
) -> VolumeRender:
    """Render N cameras (intrinsics (N, 4), OpenCV c2w (N, 4, 4)) of `field` at height x width."""
    origins, directions = pixel_rays(intrinsics, c2w, height, width)
    n = origins.shape[0]
    rays_d = directions.reshape(-1, 3).float()
    rgb, opacity, distance = render_rays(field, origins.reshape(-1, 3).float(), rays_d, options)
    forward = c2w[:, None, None, :3, 2].expand(n, height, width, 3).reshape(-1, 3).float()  # optical axes
    depth = distance * (rays_d * forward).sum(-1, keepdim=True)

    def image(x: Tensor) -> Tensor:
        return x.reshape(n, height, width, -1).permute(0, 3, 1, 2)

    return VolumeRender(image(rgb), image(opacity), image(depth))


def triplane_field(field: TriplaneField, triplane: Tensor) -> FieldFn:
    """The field function of one triplane (3, C, R, R) for `render_views` / `render_rays`."""

    def query(points: Tensor) -> tuple[Tensor, Tensor]:
        density, rgb = field.query(triplane[None], points[None])
        return density[0], rgb[0]

    return query


def render_triplane(
    field: TriplaneField,
    triplane: Tensor,
    intrinsics: Tensor,
    c2w: Tensor,
    height: int,
    width: int,
    options: VolumeOptions = VolumeOptions(),
) -> VolumeRender:
    """Render one triplane (3, C, R, R) from N cameras."""
    return render_views(triplane_field(field, triplane), intrinsics, c2w, height, width, options)
