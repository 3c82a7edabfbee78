"""Training stage 2 (mesh): views -> triplane -> density grid -> differentiable marching cubes -> mesh,
rasterized from the supervision cameras and compared with the views (the paper's section 3.2).

Per object: the density is queried on a `grid`^3 lattice over [-1, 1]^3 with gradients, the surface at density
`DENSITY_LEVEL` is extracted by marching cubes (PyTorch, or diso's DiffMC on CUDA; both differentiable in the
grid values), rasterized into every supervision view; each covered pixel takes the colour field's value at its
surface point. Losses with the paper's weights as defaults:
- rgb: MSE of the render over white against the view (1.0);
- perceptual: LPIPS with its weights, else 1 - SSIM (0.5);
- depth: L1 of camera-space depth where both the mesh and the ground truth cover the pixel (0.5; needs a pool
  with depth maps);
- mask: MSE of the rendered coverage against the view's mask (1.0; its gradient reaches the geometry through
  the rasterizer's anti-aliasing of the outline, with either back end);
- opacity regulariser: the stage-1 ray-opacity MSE on random rays of the density field (0.5), which keeps the
  volume consistent with the masks where the mesh has no surface yet.
It starts from stage-1 weights (`model`), AdamW (lr 5e-5 in the paper), cosine schedule, and shares checkpoints,
resume, logs, validation and DDP with stage 1 (`training.run`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from gtr_backend.mesh import DENSITY_LEVEL, MeshError, density_grid, sdf_to_mesh
from gtr_backend.metrics import psnr_from_mse, ssim
from gtr_backend.model import GTR
from gtr_backend.model.fields import sample_triplane
from gtr_backend.render.raster import get_rasterizer, project
from gtr_backend.render.volume import VolumeOptions, render_rays, triplane_field

from ..lpips import LPIPS
from .dataset import at_least
from .run import LoopOptions, Pool, TrainingLoop
from .stage1 import sample_rays


@dataclass(frozen=True)
class Stage2Options(LoopOptions):
    """Stage 2 (meshes through differentiable marching cubes and rasterization): the loop's options, with a
    smaller batch and a gentler schedule by default, and the mesh losses' weights."""

    batch: int = 4
    lr: float = 5e-5
    warmup: int = 50
    grid: int = 128  # marching-cubes lattice per side (the paper: 256)
    rgb_weight: float = 1.0
    perceptual_weight: float = 0.5
    depth_weight: float = 0.5
    mask_weight: float = 1.0
    opacity_weight: float = 0.5
    opacity_rays: int = 1024  # per object, for the opacity regulariser
    samples: int = 64  # per ray, for the opacity regulariser

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, grid=8, opacity_rays=1, samples=1)
        at_least(self, rgb_weight=0, perceptual_weight=0, depth_weight=0, mask_weight=0, opacity_weight=0)


@dataclass
class MeshLosses:
    rgb: Tensor
    perceptual: Tensor
    depth: Tensor
    mask: Tensor
    opacity: Tensor
    faces: int

    def total(self, o: Stage2Options) -> Tensor:
        return (
            o.rgb_weight * self.rgb
            + o.perceptual_weight * self.perceptual
            + o.depth_weight * self.depth
            + o.mask_weight * self.mask
            + o.opacity_weight * self.opacity
        )


def mesh_losses(
    model: GTR,
    triplane: Tensor,
    rgba: Tensor,
    intrinsics: Tensor,
    c2w: Tensor,
    depth: Tensor | None,
    options: Stage2Options,
    generator: torch.Generator,
    lpips: LPIPS | None,
) -> MeshLosses:
    """The stage-2 losses of one object: triplane (3, C, R, R); its supervision views rgba (V, 4, S, S) with
    cameras, and depth (V, 1, S, S) or None."""
    device = triplane.device
    zero = torch.zeros((), device=device)
    field = model.field
    origins, directions, _, target_mask = sample_rays(rgba, intrinsics, c2w, options.opacity_rays, generator)
    volume = VolumeOptions(num_samples=options.samples, stratified=True)
    _, ray_opacity, _ = render_rays(triplane_field(field, triplane), origins, directions, volume)
    opacity = (ray_opacity - target_mask).square().mean()

    def density(points: Tensor) -> Tensor:
        return field.density(sample_triplane(triplane[None], points[None])[0])

    sdf = -(density_grid(density, options.grid, device, coarse_to_fine=False) - DENSITY_LEVEL)
    try:
        mesh = sdf_to_mesh(sdf)
    except MeshError:  # no surface yet: only the regulariser can teach this object
        return MeshLosses(zero, zero, zero, zero, opacity, 0)
    size = rgba.shape[-1]
    rasterizer = get_rasterizer(device)
    clip = project(mesh.vertices, intrinsics, c2w, size, size)
    fragments = rasterizer.rasterize(clip, mesh.faces, size, size)
    covered = fragments.mask[..., None].float()
    points = rasterizer.interpolate(mesh.vertices, fragments, mesh.faces)  # (V, S, S, 3)
    colour = field.color(sample_triplane(triplane[None], points.reshape(1, -1, 3))[0]).reshape(points.shape)
    image, alpha = rasterizer.antialias(torch.cat([colour * covered, covered], -1), fragments, clip, mesh.faces).split(
        [3, 1], -1
    )
    render = (image + (1 - alpha)).permute(0, 3, 1, 2)  # over white, (V, 3, S, S)
    alpha = alpha.permute(0, 3, 1, 2)
    target = rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])
    rgb = (render - target).square().mean()
    perceptual = (
        lpips(render, target).mean() if lpips is not None else 1 - ssim(render, target, dtype=torch.float32).mean()
    )
    mask = (alpha - rgba[:, 3:]).square().mean()
    depth_loss = zero
    if depth is not None:
        rendered_depth = rasterizer.interpolate(clip[..., 3:].contiguous(), fragments, mesh.faces).permute(0, 3, 1, 2)
        both = (depth > 0) & (fragments.mask[:, None])
        if bool(both.any()):
            depth_loss = (rendered_depth - depth).abs()[both].mean()
    return MeshLosses(rgb, perceptual, depth_loss, mask, opacity, mesh.num_faces)


class Stage2:
    """Stage 2's step: a batch's triplanes -> meshes (differentiable marching cubes) rasterized at the supervision
    views, plus the opacity regulariser (see the module docstring)."""

    def __init__(self, options: Stage2Options, lpips: LPIPS | None = None) -> None:
        self.options, self.lpips = options, lpips

    def info(self) -> dict[str, Any]:
        """What the run's config records about the stage."""
        perceptual = "lpips" if self.lpips is not None else "1 - ssim"
        loss = f"rgb + perceptual ({perceptual}) + depth + mask + opacity"
        return {"stage": 2, "loss": loss, "options": asdict(self.options)}

    def losses(self, loop: TrainingLoop, pool: Pool) -> tuple[Tensor, dict[str, float]]:
        """One batch drawn from the pool -> its loss and the stage's log fields."""
        o, n = self.options, loop.inputs_count
        indices = loop.draw(len(pool))
        rgba, intrinsics, c2w = pool.batch(indices)
        depth = pool.depth_batch(indices)
        triplanes = loop.triplanes(rgba[:, :n], intrinsics[:, :n], c2w[:, :n])
        parts = [
            mesh_losses(
                loop.model,
                triplanes[b],
                rgba[b, n:],
                intrinsics[b, n:],
                c2w[b, n:],
                None if depth is None else depth[b, n:],
                o,
                loop.generator,
                self.lpips,
            )
            for b in range(o.batch)
        ]
        loss = sum((p.total(o) for p in parts), torch.zeros((), device=loop.device)) / o.batch

        def mean(name: str) -> float:
            return sum(float(getattr(p, name).detach()) for p in parts) / len(parts)

        return loss, {
            "rgb_loss": mean("rgb"),
            "psnr": psnr_from_mse(mean("rgb")),
            "perceptual_loss": mean("perceptual"),
            "depth_loss": mean("depth"),
            "mask_loss": mean("mask"),
            "opacity_loss": mean("opacity"),
            "faces": sum(p.faces for p in parts) / len(parts),
        }
