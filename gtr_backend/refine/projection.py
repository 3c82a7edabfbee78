"""Surface colours taken straight from the input views, where they see the surface.

For a surface point p with normal n, view i contributes its pixel at the projection of p when
- p is visible in it: p's depth matches the mesh's own depth map of that view (no occluder in front), or the
  view's own depth where it has one (a capture's depth pass: what it really saw);
- the pixel is inside the view's mask;
and rates how well it sees p by
    q_i = facing_i * edge_i,
where facing_i = cos(angle between n and the direction to camera i) (grazing views count little) and
edge_i = min(1, distance to the mask's outline or to a depth edge, in pixels / `edge_pixels`) (pixels at
silhouettes and occlusion boundaries mix object and background, and small pose errors matter most there).
The projected colour is the mean weighted by q_i^sharpness: a high `sharpness` makes the best-placed view
dominate, which keeps printed text from ghosting where neighbouring views disagree slightly, while seams
between views still fade. A view that the others outvote (their weights add up to more than its own) and whose
colour differs from theirs sees something else at p (an occluder the mesh lacks, the far side of a phantom
bulge): its quality fades by exp(-(difference / `agreement`)^2), so it paints nothing there.
The projected colour is laid over a fill with alpha = min(1, max_i q_i / `seen_well`). The fill is half the
base colour (the refined colour field) and half the calm colour of the nearby surface that the views do see
well (`CalmColors`), so what no view sees gets a quiet continuation of its surroundings, not the streaks a
colour field fitted to the views leaves where they do not look.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..mesh.distance import distance_to, image_signed_distance
from ..mesh.mesh import Mesh
from ..pixels import pull_push
from ..render.mesh_render import seen_surface
from ..render.raster import Rasterizer, clip_to_pixels, project, sample_images
from ..views.viewset import ViewSet
from .labelling import ViewLabels, choose_views


@dataclass(frozen=True)
class ProjectionOptions:
    sharpness: float = 4.0  # exponent on each view's quality when views are mixed
    edge_pixels: float = 3.0  # quality falls to 0 over this many pixels at silhouettes and depth edges
    seen_well: float = 0.3  # quality (cosine) from which the views replace the base colour entirely
    depth_tolerance: float = 2.5  # pixels' worth of depth (at each point's distance) allowed by the z-test
    agreement: float = 0.15  # colour distance (mean abs, 0-1) at which a view disagreeing with the others fades
    calm: bool = True  # the fill is half the calm colour of the nearby well-seen surface (else only the base)
    calm_cells: int = 64  # cells along the longest side of the calm colour volume
    best_view: bool = False  # each face from the view that sees it best (`labelling`), where faces are given
    sampling: str = "bicubic"  # how the views' pixels are read ("bicubic" or "bilinear", torch's grid_sample)


@dataclass(frozen=True)
class Projection:
    """What the views show at P surface points: their colour (P, 3), how well the best view sees each (P,), and,
    where the views carry them, the material (P, 3: roughness, metallic, known 0/1) and emission (P, 3)."""

    rgb: Tensor
    quality: Tensor
    material: Tensor | None = None
    emission: Tensor | None = None


class ViewColors:
    """Colours of surface points from the input views that see them (see the module docstring).

    `mesh` is the surface the points lie on (world frame), used for the visibility test; `views` may have any
    resolution (the higher, the sharper).
    """

    def __init__(
        self,
        mesh: Mesh,
        views: ViewSet,
        rasterizer: Rasterizer | None = None,
        options: ProjectionOptions | None = None,
        close: bool = True,
    ) -> None:
        """`close`: the mesh lies on the surface the views' own depth saw (within the z-test's tolerance), so
        their depth can stand for its own; a coarse level of detail is not, and is rendered."""
        self.views = views
        self.options = options or ProjectionOptions()
        self.mesh = surface = mesh.to(views.device)
        if views.depth is not None and close:  # what each view really saw (a capture's depth): no need to render
            self.depth = torch.where(
                views.depth[:, 0] > 0, views.depth[:, 0], torch.full_like(views.depth[:, 0], math.inf)
            )
        else:
            self.depth = seen_surface(surface, views.intrinsics, views.c2w, views.height, views.width, rasterizer).depth
        band = int(self.options.edge_pixels) + 2
        inside = image_signed_distance(views.foreground(), band)  # pixels to the mask's outline, positive inside
        self.edge = torch.minimum(inside, distance_to_depth_edges(self.depth, band)).clamp_min(0)  # (N, H, W)
        self.calm = CalmColors.of(self, surface) if self.options.calm else None

    def __call__(self, points: Tensor, normals: Tensor) -> tuple[Tensor, Tensor]:
        """points, normals (P, 3) world frame -> projected colour (P, 3) and the best view's quality (P,)."""
        seen = self.project(points, normals)
        return seen.rgb, seen.quality

    @functools.cached_property
    def labels(self) -> ViewLabels:
        """The view that textures each face of the mesh (`labelling.choose_views`), made on first use."""
        return choose_views(self, self.mesh)

    def look(self, points: Tensor, normals: Tensor) -> tuple[Tensor, Tensor]:
        """Where each view sees surface points (P, 3) with normals (P, 3), world frame: pixel coordinates
        (N, P, 2) and how well it sees each (N, P): facing * edge (module docstring), 0 where hidden."""
        views, options = self.views, self.options
        clip = project(points.float(), views.intrinsics, views.c2w, views.height, views.width)  # (N, P, 4)
        pixels = clip_to_pixels(clip, views.height, views.width)  # (N, P, 2)
        z = clip[..., 3]
        surface = sample_images(self.depth[:, None], pixels, "nearest", "border")[..., 0]
        focal = views.intrinsics[:, None, :2].mean(-1)
        visible = (z - surface).abs() <= options.depth_tolerance * z / focal
        in_image = (pixels >= 0).all(-1) & (pixels[..., 0] <= views.width) & (pixels[..., 1] <= views.height)
        to_camera = F.normalize(views.c2w[:, None, :3, 3] - points[None].float(), dim=-1)
        facing = (F.normalize(normals.float(), dim=-1)[None] * to_camera).sum(-1).clamp_min(0)
        edge = (sample_images(self.edge[:, None], pixels, "bilinear", "border")[..., 0] / options.edge_pixels).clamp(
            0, 1
        )
        return pixels, facing * edge * (visible & in_image).float()

    def project(self, points: Tensor, normals: Tensor, faces: Tensor | None = None) -> Projection:
        """What the views show at surface points (P, 3) with normals (P, 3), world frame (`Projection`).
        `faces` (P,): the face of the mesh each point lies on; with them (and `best_view`), each point takes the
        colour of its face's view (`labels`) where that view sees it, levelled across seams."""
        views, options = self.views, self.options
        pixels, quality = self.look(points, normals)  # quality (N, P): how well each view sees each point

        def sample(images: Tensor) -> Tensor:  # (N, C, H, W) -> (N, P, C)
            # Bicubic by default: the texture is read again when the result is drawn, and two bilinear reads in a
            # row soften an edge by about a view's pixel; the overshoot bicubic can add at an edge is clipped.
            return sample_images(images, pixels, options.sampling, "border").clamp(0, 1)

        weight = quality.pow(options.sharpness)
        rgb = sample(views.rgb)  # (N, P, 3)
        mean = (weight[..., None] * rgb).sum(0) / weight.sum(0).clamp_min(1e-12)[:, None]
        chosen = None
        if faces is not None and options.best_view and views.num_views > 1:
            label = self.labels.labels[faces]
            seen = quality.gather(0, label.clamp_min(0)[None])[0] > 0
            chosen = torch.nonzero((label >= 0) & seen).squeeze(1)
        if views.num_views > 1 and options.agreement > 0:
            # Each view is compared with the consensus of the others (weighted by how well they see the point):
            # a view the others outvote and that disagrees with them sees something else there (an occluder the
            # mesh lacks, the far side of a phantom bulge) and fades. The best-placed view is never outvoted by
            # worse ones, so slightly misaligned views do not blur printed text.
            total = weight.sum(0, keepdim=True)
            others = total - weight
            consensus = ((weight[..., None] * rgb).sum(0, keepdim=True) - weight[..., None] * rgb) / others.clamp_min(
                1e-12
            )[..., None]
            outvoted = others >= weight
            distance = (rgb - consensus).abs().mean(-1)
            fade = torch.exp(-((distance / options.agreement) ** 2))
            agree = torch.where(outvoted & (others > 1e-12), fade, torch.ones_like(fade))
            quality = quality * agree
            weight = weight * agree
            mean = torch.where(
                weight.sum(0)[:, None] > 1e-12,
                (weight[..., None] * rgb).sum(0) / weight.sum(0).clamp_min(1e-12)[:, None],
                mean,
            )
        if chosen is not None and faces is not None and len(chosen):  # each from its face's view alone
            view = self.labels.labels[faces[chosen]]
            weight[:, chosen] = 0
            weight[view, chosen] = 1
            offset = self.labels.offsets(points[chosen], faces[chosen])
            mean[chosen] = rgb[view, chosen] + offset
        material = emission = None
        if views.material is not None:  # the views' weights, where each knows the material
            values = sample(views.material)  # (N, P, 3): roughness, metallic, known
            known = weight * values[..., 2]
            total = known.sum(0)
            material = torch.cat(
                [
                    (known[..., None] * values[..., :2]).sum(0) / total.clamp_min(1e-12)[:, None],
                    (total > 1e-12)[:, None],
                ],
                dim=1,
            )
        if views.emission is not None:
            emission = (weight[..., None] * sample(views.emission)).sum(0) / weight.sum(0).clamp_min(1e-12)[:, None]
        return Projection(mean, quality.max(dim=0).values, material, emission)

    def blend(
        self, points: Tensor, normals: Tensor, base: Callable[[Tensor], Tensor], seen: Projection | None = None
    ) -> Tensor:
        """Colours (P, 3) of the points: the views' colours laid over `base(points)` (world points -> rgb) where
        a view sees them well; `base` is only evaluated at the points the views do not cover entirely. `seen`:
        `project` of the same points, if already made."""
        seen = seen or self.project(points, normals)
        projected, best = seen.rgb.clone(), seen.quality
        alpha = (best / self.options.seen_well).clamp(0, 1)[:, None]
        partly = torch.nonzero(alpha[:, 0] < 1).squeeze(1)
        if len(partly):
            a = alpha[partly]
            fill = base(points[partly])
            if self.calm is not None:
                fill = 0.5 * (fill + self.calm(points[partly]))
            projected[partly] = a * projected[partly] + (1 - a) * fill.to(projected.dtype)
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


@dataclass(frozen=True)
class CalmColors:
    """A smooth colour volume made only from what the views see well: the colours of the well-seen surface
    points, splatted into a coarse grid over the mesh's bounds (weighted by how well they are seen), and every
    other cell filled from its nearest seen cells (`pixels.pull_push`). Looked up (trilinear) at any world
    point, it gives surface no view sees a calm colour taken from the nearby seen surface: no streaks, no
    colour from a view that cannot see the point."""

    volume: Tensor  # (1, 3, D, H, W) rgb, [z, y, x] cells
    low: Tensor  # (3,) world corner of the grid
    size: Tensor  # (3,) world extent of the grid

    @classmethod
    def of(cls, views: ViewColors, mesh: Mesh) -> CalmColors:
        welded, index = torch.unique(mesh.vertices.detach().float(), dim=0, return_inverse=True)
        normals = Mesh(welded, index[mesh.faces]).vertex_normals()
        rgb, quality = views(welded, normals)
        weight = (quality / views.options.seen_well).clamp(0, 1)
        low, high = welded.min(0).values, welded.max(0).values
        pad = (high - low).max() * 0.05 + 1e-3
        low, high = low - pad, high + pad
        cells = views.options.calm_cells
        shape = ((high - low) / (high - low).max() * cells).ceil().long().clamp_min(2)  # (x, y, z) cells
        cell = ((welded - low) / (high - low) * shape).long().clamp(min=torch.zeros_like(shape), max=shape - 1)
        flat = (cell[:, 2] * shape[1] + cell[:, 1]) * shape[0] + cell[:, 0]
        count = int(shape.prod())
        sums = torch.zeros((count, 4), device=welded.device).index_add_(
            0, flat, torch.cat([rgb * weight[:, None], weight[:, None]], dim=1)
        )
        grid = sums.reshape(int(shape[2]), int(shape[1]), int(shape[0]), 4)
        filled = grid[..., 3] > 1e-3
        if not bool(filled.any()):
            colours = torch.full_like(grid[..., :3], 0.5)
        else:
            colours = pull_push(grid[..., :3] / grid[..., 3:].clamp_min(1e-12), filled, grow=2)
        return cls(colours.permute(3, 0, 1, 2)[None].contiguous(), low, high - low)

    def __call__(self, points: Tensor) -> Tensor:
        """World points (P, 3) -> calm rgb (P, 3)."""
        unit = ((points.float() - self.low) / self.size) * 2 - 1  # (x, y, z) in [-1, 1]
        grid = unit.reshape(1, -1, 1, 1, 3)
        out = F.grid_sample(self.volume, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.reshape(3, -1).T
