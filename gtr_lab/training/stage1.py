"""Training stage 1 (NeRF): views -> triplane -> volume renders of held-out views.

Each step takes `batch` objects from a pool; the model sees their input views and predicts a triplane; about
`rays` pixels of their supervision views are volume rendered with stratified samples and compared with the
pixels (colour over white) and the masks (opacity). Pixels are either random (half drawn from the object's
mask: MSE + opacity) or, with `patch`, square patches centred on the object as in the paper, which adds a
perceptual term: 0.5 LPIPS when LPIPS weights are given, otherwise 0.5 (1 - SSIM) (the run's config records
which). AdamW (betas 0.9, 0.95, weight decay 0.05), linear warm-up then cosine decay, bf16 autocast for the
network on CUDA, gradient clipping at 1.0. Training stops after `steps` or `max_minutes`, whichever is first.
Checkpoints, resume, logs, validation and multi-GPU runs: see `training.run`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from gtr_backend.metrics import psnr_from_mse, ssim
from gtr_backend.model import GTR
from gtr_backend.render.volume import VolumeOptions, render_rays, triplane_field
from gtr_backend.views.rays import pixel_rays

from ..lpips import LPIPS
from .dataset import at_least
from .run import LoopOptions, Pool, TrainingLoop


@dataclass(frozen=True)
class Stage1Options(LoopOptions):
    """Stage 1 (NeRF volume rendering of the triplane): the loop's options and these."""

    rays: int = 4096  # per object
    samples: int = 96  # per ray
    opacity_weight: float = 1.0
    patch: int = 0  # > 0: supervise square patches of this size (the paper: 128 of 512) instead of random rays
    perceptual_weight: float = 0.5  # on patches: LPIPS when its weights are given, else (1 - SSIM)

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, rays=1, samples=1, opacity_weight=0, patch=0, perceptual_weight=0)


def sample_rays(
    rgba: Tensor, intrinsics: Tensor, c2w: Tensor, count: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pick `count` pixels (half on the object) of one object's views -> origins, directions (R, 3),
    target rgb over white (R, 3), target mask (R, 1)."""
    v, _, s, _ = rgba.shape
    device = rgba.device
    mask = rgba[:, 3].reshape(-1)
    on_object = torch.nonzero(mask > 0.5).squeeze(1)
    uniform = torch.randint(0, v * s * s, (count // 2,), device=device, generator=generator)
    pick = torch.randint(0, max(1, on_object.shape[0]), (count - count // 2,), device=device, generator=generator)
    chosen = torch.cat([uniform, on_object[pick] if on_object.shape[0] else uniform[: count - count // 2]])
    origins, directions = pixel_rays(intrinsics, c2w, s, s)
    colour = (rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])).permute(0, 2, 3, 1).reshape(-1, 3)
    return (origins.reshape(-1, 3)[chosen], directions.reshape(-1, 3)[chosen], colour[chosen], mask[chosen, None])


def sample_patches(
    rgba: Tensor, intrinsics: Tensor, c2w: Tensor, patch: int, count: int, generator: torch.Generator
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`count` square patches (patch x patch) of one object's views, each centred near an object pixel when the
    view shows the object -> origins, directions (count * patch^2, 3), target rgb over white (count, 3, P, P),
    target mask (count, 1, P, P)."""
    v, _, s, _ = rgba.shape
    device = rgba.device
    views = torch.randint(0, v, (count,), device=device, generator=generator)
    origins, directions = pixel_rays(intrinsics, c2w, s, s)  # (V, S, S, 3)
    colour = rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:])
    out_o, out_d, out_rgb, out_mask = [], [], [], []
    for view in views.tolist():
        on_object = torch.nonzero(rgba[view, 3] > 0.5)
        if on_object.shape[0]:
            pick = on_object[torch.randint(0, on_object.shape[0], (1,), device=device, generator=generator)][0]
            top, left = (int(c) - patch // 2 for c in pick)
        else:
            top, left = (int(c) for c in torch.randint(0, s - patch + 1, (2,), device=device, generator=generator))
        top, left = min(max(top, 0), s - patch), min(max(left, 0), s - patch)
        rows, cols = slice(top, top + patch), slice(left, left + patch)
        out_o.append(origins[view, rows, cols].reshape(-1, 3))
        out_d.append(directions[view, rows, cols].reshape(-1, 3))
        out_rgb.append(colour[view, :, rows, cols])
        out_mask.append(rgba[view, 3:, rows, cols])
    return torch.cat(out_o), torch.cat(out_d), torch.stack(out_rgb), torch.stack(out_mask)


def object_losses(
    model: GTR,
    triplane: Tensor,
    rgba: Tensor,
    intrinsics: Tensor,
    c2w: Tensor,
    options: Stage1Options,
    volume: VolumeOptions,
    generator: torch.Generator,
    lpips: LPIPS | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(colour MSE, perceptual, opacity MSE) of one object's supervision views, on random rays or patches."""
    field = triplane_field(model.field, triplane)
    zero = torch.zeros((), device=rgba.device)
    if options.patch <= 0:
        origins, directions, target, target_mask = sample_rays(rgba, intrinsics, c2w, options.rays, generator)
        rgb, opacity, _ = render_rays(field, origins, directions, volume)
        return (rgb - target).square().mean(), zero, (opacity - target_mask).square().mean()
    count = max(1, options.rays // options.patch**2)
    origins, directions, target, target_mask = sample_patches(rgba, intrinsics, c2w, options.patch, count, generator)
    rgb, opacity, _ = render_rays(field, origins, directions, volume)
    p = options.patch
    image = rgb.reshape(count, p, p, 3).permute(0, 3, 1, 2)
    alpha = opacity.reshape(count, p, p, 1).permute(0, 3, 1, 2)
    perceptual = (
        lpips(image, target).mean() if lpips is not None else 1 - ssim(image, target, dtype=torch.float32).mean()
    )
    return (image - target).square().mean(), perceptual, (alpha - target_mask).square().mean()


class Stage1:
    """Stage 1's step: a batch's triplanes volume rendered at the supervision views (see the module docstring)."""

    def __init__(self, options: Stage1Options, lpips: LPIPS | None = None) -> None:
        self.options, self.lpips = options, lpips
        self.volume = VolumeOptions(num_samples=options.samples, stratified=True)

    def info(self) -> dict[str, Any]:
        """What the run's config records about the stage."""
        o = self.options
        perceptual = "none" if o.patch <= 0 else ("lpips" if self.lpips is not None else "1 - ssim")
        return {"stage": 1, "loss": f"mse + {o.perceptual_weight} {perceptual} + opacity", "options": asdict(o)}

    def losses(self, loop: TrainingLoop, pool: Pool) -> tuple[Tensor, dict[str, float]]:
        """One batch drawn from the pool -> its loss and the stage's log fields."""
        o, n = self.options, loop.inputs_count
        rgba, intrinsics, c2w = pool.batch(loop.draw(len(pool)))
        triplanes = loop.triplanes(rgba[:, :n], intrinsics[:, :n], c2w[:, :n])
        colour_loss, perceptual_loss, opacity_loss = (torch.zeros((), device=loop.device) for _ in range(3))
        for b in range(o.batch):
            colour, perceptual, opacity = object_losses(
                loop.model,
                triplanes[b],
                rgba[b, n:],
                intrinsics[b, n:],
                c2w[b, n:],
                o,
                self.volume,
                loop.generator,
                self.lpips,
            )
            colour_loss = colour_loss + colour / o.batch
            perceptual_loss = perceptual_loss + perceptual / o.batch
            opacity_loss = opacity_loss + opacity / o.batch
        loss = colour_loss + o.perceptual_weight * perceptual_loss + o.opacity_weight * opacity_loss
        return loss, {
            "psnr": psnr_from_mse(loop.dist.mean(float(colour_loss.detach()), loop.device)),
            "opacity_loss": float(opacity_loss.detach()),
            "perceptual_loss": float(perceptual_loss.detach()),
        }
