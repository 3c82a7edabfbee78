"""Per-instance texture refinement (GTR paper, section 3.3): make the fixed mesh reproduce the input views.

Geometry stays fixed (the mesh, and the density MLP). What is optimised is a copy of the triplane (lr 0.15)
and/or of the colour MLP (lr 1e-4): the colour of the surface point seen at each input pixel (inside the
input mask and the mesh's silhouette) is pulled towards that pixel. The visible surface points of every
view are rasterized once, before the first step; each step is then one triplane lookup, one MLP pass and one
optimiser step. AdamW with betas (0.9, 0.95), weight decay 0.05, gradient clipping at 1.0 and a cosine
schedule, as in the released code; the loss is MSE by default (the paper's) or L1 (the release's).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ..mesh.mesh import Mesh
from ..metrics import psnr
from ..model.fields import TriplaneField, sample_triplane
from ..render.raster import Rasterizer, TorchRasterizer, project
from ..views.viewset import ViewSet

RefineParams = Literal["both", "color_mlp", "triplane"]
Progress = Callable[[float], None]  # fraction done in [0, 1]; may raise to cancel


@dataclass(frozen=True)
class RefineOptions:
    steps: int = 20
    params: RefineParams = "both"
    triplane_lr: float = 0.15
    mlp_lr: float = 1e-4
    loss: Literal["mse", "l1"] = "mse"
    weight_decay: float = 0.05
    grad_clip: float = 1.0


class ColorField:
    """Surface colour of a (possibly refined) triplane: world points (P, 3) -> rgb (P, 3)."""

    def __init__(self, triplane: Tensor, field: TriplaneField) -> None:
        self.triplane = triplane  # (3, C, R, R)
        self.field = field

    def __call__(self, points: Tensor) -> Tensor:
        features = sample_triplane(self.triplane[None], points[None].to(self.triplane.dtype))[0]
        return self.field.color(features)


@dataclass
class RefineResult:
    colors: ColorField
    psnr_before: float  # on the input views' pixels that the mesh covers inside their masks
    psnr_after: float
    losses: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class VisibleSurface:
    """The input pixels the refinement fits: world points (P, 3) on the mesh and their target colours (P, 3)."""

    points: Tensor
    targets: Tensor


def visible_surface(mesh: Mesh, views: ViewSet, rasterizer: Rasterizer | None = None) -> VisibleSurface:
    """Rasterize `mesh` from every view once; keep the pixels covered by both the mesh and the input mask."""
    rasterizer = rasterizer or TorchRasterizer()
    vertices = mesh.vertices.detach().float()
    clip = project(vertices, views.intrinsics, views.c2w, views.height, views.width)
    fragments = rasterizer.rasterize(clip, mesh.faces, views.height, views.width)
    points = rasterizer.interpolate(vertices, fragments, mesh.faces)  # (N, H, W, 3)
    keep = fragments.mask & (views.mask[:, 0] > 0.5)
    targets = views.rgb.permute(0, 2, 3, 1)[keep]
    return VisibleSurface(points[keep].detach(), targets)


def surface_psnr(prediction: Tensor, target: Tensor) -> float:
    """PSNR (dB) of surface colours (P, 3) against their targets (P, 3)."""
    return float(psnr(prediction[None], target[None])[0])


def refine_texture(
    field: TriplaneField,
    triplane: Tensor,
    mesh: Mesh,
    views: ViewSet,
    options: RefineOptions = RefineOptions(),
    rasterizer: Rasterizer | None = None,
    progress: Progress | None = None,
) -> RefineResult:
    """Refine the colour of `triplane` (3, C, R, R) so `mesh` rendered from `views` matches them.

    `field` and `triplane` are not modified: the result holds refined copies. `views` must be on the same
    device as the triplane, at the resolution to fit (e.g. 512x512).
    """
    surface = visible_surface(mesh, views, rasterizer)
    plane = triplane.detach().clone().float()
    color_field = copy.deepcopy(field).float()
    for p in color_field.parameters():
        p.requires_grad_(False)
    colors = ColorField(plane, color_field)
    with torch.no_grad():
        before = surface_psnr(colors(surface.points), surface.targets)
    trainable: list[Tensor] = []
    groups: list[dict[str, object]] = []
    if options.params in ("both", "triplane"):
        plane.requires_grad_(True)
        trainable.append(plane)
        groups.append({"params": [plane], "lr": options.triplane_lr})
    if options.params in ("both", "color_mlp"):
        mlp = color_field.mlp if color_field.joint else color_field.color_mlp
        weights = list(mlp.parameters())
        for p in weights:
            p.requires_grad_(True)
        trainable += weights
        groups.append({"params": weights, "lr": options.mlp_lr})
    losses: list[float] = []
    if options.steps > 0 and groups and surface.points.shape[0] > 0:
        optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.95), weight_decay=options.weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=options.steps)
        for step in range(options.steps):
            error = colors(surface.points) - surface.targets
            loss = error.square().mean() if options.loss == "mse" else error.abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, options.grad_clip)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if progress:
                progress((step + 1) / options.steps)
    plane.requires_grad_(False)
    for p in color_field.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        after = surface_psnr(colors(surface.points), surface.targets)
    return RefineResult(colors, before, after, losses)
