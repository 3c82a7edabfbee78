"""`train`: one training stage from start (or a checkpoint) to its weights. The stage is chosen by its options:
`Stage1Options` trains the triplane by NeRF volume rendering (`stage1`), `Stage2Options` through meshes
(`stage2`); `TrainingLoop` (`run`) does everything around the losses."""

from __future__ import annotations

import torch

from gtr_backend.model import GTR

from ..lpips import LPIPS
from .run import Pool, TrainingLoop, TrainingRun
from .stage1 import Stage1, Stage1Options
from .stage2 import Stage2, Stage2Options


def train(
    model: GTR,
    pool: Pool,
    options: Stage1Options | Stage2Options,
    device: torch.device | str,
    run: TrainingRun | None = None,
    lpips: LPIPS | None = None,
) -> GTR:
    """Train `model` (a new `GTR(config)` or loaded weights) on the pool for `options.steps` steps or
    `options.max_minutes`; `run` says where the weights, checkpoints, logs, validation and samples go and whether
    to resume; `lpips`: the perceptual loss's network (else 1 - SSIM). Under torchrun every process trains on its
    own batches (DDP). Returns the model in eval mode."""
    stage = Stage2(options, lpips) if isinstance(options, Stage2Options) else Stage1(options, lpips)
    loop = TrainingLoop(model, pool.sampling, options, device, stage.info(), run or TrainingRun())
    for step in loop.steps():
        loss, fields = stage.losses(loop, pool)
        loop.optimize(loss)
        if loop.after_step(loop.common_entry(step, loss) | fields):
            break
    return loop.finish()
