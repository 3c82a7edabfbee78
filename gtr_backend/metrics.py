"""The scores every stage, the fidelity score and the lab share: one PSNR, one SSIM, one mask IoU.

- `psnr_from_mse(mse)`: a mean squared error of values in [0, 1] (a float or a tensor of any shape) -> 10
  log10(1 / MSE) in dB, the same type and shape; the MSE is floored at 1e-10, so identical images score 100 dB,
  never inf.
- `psnr(prediction, target)`: (N, ...) x 2 -> (N,) dB per item, both clamped to [0, 1] first.
- `ssim(prediction, target)`: (N, C, H, W) x 2 in [0, 1] -> (N,), the usual Gaussian-window SSIM (window 11,
  sigma 1.5, K1 0.01, K2 0.03) on each channel.
- `mask_iou(covered, masks)`: (N, H, W) bool x 2 -> (N,) float, intersection over union per view (0 where both
  are empty).
"""

from __future__ import annotations

import math
from typing import overload

import torch
import torch.nn.functional as F
from torch import Tensor

MSE_FLOOR = 1e-10  # 100 dB


@overload
def psnr_from_mse(mse: float) -> float: ...
@overload
def psnr_from_mse(mse: Tensor) -> Tensor: ...
def psnr_from_mse(mse: float | Tensor) -> float | Tensor:
    if isinstance(mse, Tensor):
        return 10 * torch.log10(1.0 / mse.clamp_min(MSE_FLOOR))
    return 10 * math.log10(1.0 / max(float(mse), MSE_FLOOR))


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    return psnr_from_mse((prediction.clamp(0, 1) - target.clamp(0, 1)).square().flatten(1).mean(1))


def mask_iou(covered: Tensor, masks: Tensor) -> Tensor:
    inter = (covered & masks).flatten(1).sum(1).float()
    union = (covered | masks).flatten(1).sum(1).float()
    return inter / union.clamp_min(1)


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The 1-D Gaussian (size,) normalised to sum 1; SSIM's 2-D window is its outer product."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    prediction: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64
) -> Tensor:
    """(N, C, H, W) x 2 in [0, 1] -> (N,) mean SSIM (valid windows only, channels averaged). Computed in
    `dtype`: float64 for reported metrics, float32 is enough for a training loss (and several times faster)."""
    x, y = prediction.clamp(0, 1).to(dtype), target.clamp(0, 1).to(dtype)
    channels = x.shape[1]
    g = _gaussian_window(window, sigma, x.dtype, x.device)
    rows, columns = g.expand(channels, 1, 1, window), g[:, None].expand(channels, 1, window, 1)

    def blur(t: Tensor) -> Tensor:  # the separable Gaussian window: along rows, then along columns
        return F.conv2d(F.conv2d(t, rows, groups=channels), columns, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return value.flatten(1).mean(1).float()
