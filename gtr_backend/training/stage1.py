"""Training stage 1 (NeRF): views -> triplane -> volume renders of held-out views, MSE + opacity losses.

Each step takes `batch` objects from a `RenderedPool`; the model sees their input views and predicts a
triplane; `rays` random pixels of their supervision views (half drawn from the object's mask) are volume
rendered with stratified samples and compared with the pixels (colour over white, MSE) and the masks (opacity,
MSE). AdamW (betas 0.9, 0.95, weight decay 0.05), linear warm-up then cosine decay, bf16 autocast for the
network on CUDA, gradient clipping at 1.0. Training stops after `steps` or `max_minutes`, whichever is first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..model import GTR, GTRConfig, autocast
from ..render.volume import VolumeOptions, render_rays, triplane_field
from ..views.rays import input_maps, pixel_rays
from ..weights import save_weights
from .dataset import RenderedPool, StreamingPool

LogFn = Callable[[dict[str, float]], None]


@dataclass(frozen=True)
class Stage1Options:
    steps: int = 1000
    batch: int = 8
    rays: int = 4096  # per object
    samples: int = 96  # per ray
    lr: float = 4e-4
    warmup: int = 100
    weight_decay: float = 0.05
    opacity_weight: float = 1.0
    max_minutes: float | None = None
    seed: int = 0


def model_inputs_batch(rgba: Tensor, intrinsics: Tensor, c2w: Tensor) -> Tensor:
    """rgba (B, V, 4, S, S) in [0, 1] with cameras -> model inputs (B, V, 10, S, S) (see views.rays)."""
    b, v = rgba.shape[:2]
    flat = rgba.flatten(0, 1)
    maps = input_maps(flat[:, :3], flat[:, 3:], intrinsics.reshape(-1, 4), c2w.reshape(-1, 4, 4))
    return maps.reshape(b, v, *maps.shape[1:])


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


def train_stage1(
    config: GTRConfig,
    pool: RenderedPool | StreamingPool,
    options: Stage1Options,
    device: torch.device | str,
    output: Path | None = None,
    log: LogFn | None = None,
    model: GTR | None = None,
) -> GTR:
    """Train (or continue training) a model on the pool; saves to `output` (.safetensors) if given."""
    device = torch.device(device)
    torch.manual_seed(options.seed)
    generator = torch.Generator(device=device).manual_seed(options.seed)
    model = (model or GTR(config)).to(device).train()
    inputs_count = pool.sampling.input_views
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.lr, betas=(0.9, 0.95), weight_decay=options.weight_decay
    )

    def schedule(step: int) -> float:
        if step < options.warmup:
            return (step + 1) / options.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - options.warmup) / max(1, options.steps - options.warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    volume = VolumeOptions(num_samples=options.samples, stratified=True)
    start = time.perf_counter()
    for step in range(options.steps):
        indices = torch.randint(0, len(pool), (options.batch,), device=device, generator=generator)
        rgba, intrinsics, c2w = pool.batch(indices)
        inputs = model_inputs_batch(rgba[:, :inputs_count], intrinsics[:, :inputs_count], c2w[:, :inputs_count])
        with autocast(device, "auto"):
            triplanes = model(inputs).float()
        colour_loss, opacity_loss = torch.zeros((), device=device), torch.zeros((), device=device)
        for b in range(options.batch):
            origins, directions, target, target_mask = sample_rays(
                rgba[b, inputs_count:], intrinsics[b, inputs_count:], c2w[b, inputs_count:], options.rays, generator
            )
            rgb, opacity, _ = render_rays(triplane_field(model.field, triplanes[b]), origins, directions, volume)
            colour_loss = colour_loss + (rgb - target).square().mean() / options.batch
            opacity_loss = opacity_loss + (opacity - target_mask).square().mean() / options.batch
        loss = colour_loss + options.opacity_weight * opacity_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        elapsed = time.perf_counter() - start
        if log:
            log(
                {
                    "step": step + 1,
                    "loss": float(loss.detach()),
                    "psnr": -10 * math.log10(max(float(colour_loss.detach()), 1e-10)),
                    "opacity_loss": float(opacity_loss.detach()),
                    "lr": float(scheduler.get_last_lr()[0]),
                    "seconds": elapsed,
                }
            )
        if options.max_minutes is not None and elapsed > options.max_minutes * 60:
            break
    model.eval()
    if output is not None:
        save_weights(model, output)
    return model
