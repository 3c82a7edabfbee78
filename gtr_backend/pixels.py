"""Pixel arithmetic every stage shares: one PSNR, one conversion to 8 bits.

`psnr_from_mse(mse)`: 10 log10(1 / MSE) in dB for images in [0, 1] (MSE floored at 1e-10: 100 dB at most).
`psnr(prediction, target)`: (N, ...) x 2 -> (N,) PSNR per image, each clamped to [0, 1] first (inf for
identical images: the evaluation reports what it measures).
`to_uint8(image)`: values in [0, 1] (any shape) -> uint8 tensor, rounded to the nearest of 0..255.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MSE_FLOOR = 1e-10


def psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1.0 / max(float(mse), MSE_FLOOR))


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    mse = (prediction.clamp(0, 1) - target.clamp(0, 1)).square().flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def to_uint8(image: Tensor) -> Tensor:
    return (image.detach().clamp(0, 1) * 255).round().to(torch.uint8)
