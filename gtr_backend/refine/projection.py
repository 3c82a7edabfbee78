"""Surface colours taken straight from the input views, where they see the surface.

For a surface point p with normal n, view i contributes its pixel at the projection of p when
- p is visible in it: p's depth matches the mesh's own depth map of that view (no occluder in front);
- the pixel is inside the view's mask;
and rates how well it sees p by
    q_i = facing_i * edge_i,
where facing_i = cos(angle between n and the direction to camera i) (grazing views count little) and
edge_i = min(1, distance to the mask's outline or to a depth edge, in pixels / `edge_pixels`) (pixels at
silhouettes and occlusion boundaries mix object and background, and small pose errors matter most there).
The projected colour is the mean weighted by q_i^sharpness: a high `sharpness` makes the best-placed view
dominate, which keeps printed text from ghosting where neighbouring views disagree slightly, while seams
between views still fade. It is laid over a base colour (the refined colour field) with
alpha = min(1, max_i q_i / `seen_well`), so what no view sees well keeps the base colour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..mesh.distance import distance_to, image_signed_distance
from ..mesh.mesh import Mesh
from ..render.mesh_render import seen_surface
from ..render.raster import Rasterizer, clip_to_pixels, project, sample_images
from ..views.viewset import ViewSet


@dataclass(frozen=True)
class ProjectionOptions:
    sharpness: float = 4.0  # exponent on each view's quality when views are mixed
    edge_pixels: float = 3.0  # quality falls to 0 over this many pixels at silhouettes and depth edges
    seen_well: float = 0.3  # quality (cosine) from which the views replace the base colour entirely
    depth_tolerance: float = 2.5  # pixels' worth of depth (at each point's distance) allowed by the z-test


class ViewColors:
    """Colours of surface points from the input views that see them (see the module docstring).

    `mesh` is the surface the points lie on (world frame), used for the visibility test; `views` may have any
    resolution (the higher, the sharper).
    """

    def __init__(
        self, mesh: Mesh, views: ViewSet, rasterizer: Rasterizer | None = None, options: ProjectionOptions | None = None
    ) -> None:
        self.views = views
        self.options = options or ProjectionOptions()
        surface = mesh.to(views.device)
        self.depth = seen_surface(surface, views.intrinsics, views.c2w, views.height, views.width, rasterizer).depth
        band = int(self.options.edge_pixels) + 2
        inside = image_signed_distance(views.foreground(), band)  # pixels to the mask's outline, positive inside
        self.edge = torch.minimum(inside, distance_to_depth_edges(self.depth, band)).clamp_min(0)  # (N, H, W)

    def __call__(self, points: Tensor, normals: Tensor) -> tuple[Tensor, Tensor]:
        """points, normals (P, 3) world frame -> projected colour (P, 3) and the best view's quality (P,)."""
        views, options = self.views, self.options
        clip = project(points.float(), views.intrinsics, views.c2w, views.height, views.width)  # (N, P, 4)
        pixels = clip_to_pixels(clip, views.height, views.width)  # (N, P, 2)

        def sample(images: Tensor, mode: str = "bilinear") -> Tensor:  # (N, C, H, W) -> (N, P, C)
            return sample_images(images, pixels, mode, "border")

        z = clip[..., 3]
        surface = sample(self.depth[:, None], "nearest")[..., 0]
        focal = views.intrinsics[:, None, :2].mean(-1)
        visible = (z - surface).abs() <= options.depth_tolerance * z / focal
        in_image = (pixels >= 0).all(-1) & (pixels[..., 0] <= views.width) & (pixels[..., 1] <= views.height)
        to_camera = F.normalize(views.c2w[:, None, :3, 3] - points[None], dim=-1)
        facing = (F.normalize(normals, dim=-1)[None] * to_camera).sum(-1).clamp_min(0)
        edge = (sample(self.edge[:, None])[..., 0] / options.edge_pixels).clamp(0, 1)
        quality = facing * edge * (visible & in_image).float()  # (N, P): how well each view sees each point
        weight = quality.pow(options.sharpness)
        rgb = sample(views.rgb)  # (N, P, 3)
        mean = (weight[..., None] * rgb).sum(0) / weight.sum(0).clamp_min(1e-12)[:, None]
        return mean, quality.max(dim=0).values

    def blend(self, points: Tensor, normals: Tensor, base: Callable[[Tensor], Tensor]) -> Tensor:
        """Colours (P, 3) of the points: the views' colours laid over `base(points)` (world points -> rgb) where
        a view sees them well; `base` is only evaluated at the points the views do not cover entirely."""
        projected, best = self(points, normals)
        alpha = (best / self.options.seen_well).clamp(0, 1)[:, None]
        partly = torch.nonzero(alpha[:, 0] < 1).squeeze(1)
        if len(partly):
            a = alpha[partly]
            projected[partly] = a * projected[partly] + (1 - a) * base(points[partly]).to(projected.dtype)
        return projected


def distance_to_depth_edges(depth: Tensor, band: int, jump: float = 0.02) -> Tensor:
    """(N, H, W) depth maps (inf = background) -> distance in pixels to the nearest pixel whose 4-neighbour
    differs in depth by more than `jump` times its own depth (an occlusion boundary), clamped to `band`."""
    finite = torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth))
    edges = torch.zeros_like(depth, dtype=torch.bool)
    for dim in (1, 2):
        a, b = finite.narrow(dim, 0, finite.shape[dim] - 1), finite.narrow(dim, 1, finite.shape[dim] - 1)
        both = torch.isfinite(depth.narrow(dim, 0, depth.shape[dim] - 1)) & torch.isfinite(
            depth.narrow(dim, 1, depth.shape[dim] - 1)
        )
        step = both & ((a - b).abs() > jump * torch.minimum(a, b))
        edges.narrow(dim, 0, edges.shape[dim] - 1).logical_or_(step)
        edges.narrow(dim, 1, edges.shape[dim] - 1).logical_or_(step)
    return torch.stack([distance_to(e, band) for e in edges])
