"""Patch encoder: 10-channel view maps in, image tokens out.

(B, V, C_in, H, W) -> (B, V * (H/p) * (W/p), width): one convolution with kernel = stride = p and no bias
("a single layer that downsamples 512 to 32"), then LayerNorm. Tokens are ordered view, row, column.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import GTRConfig


class PatchEncoder(nn.Module):
    def __init__(self, config: GTRConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            config.in_channels, config.width, kernel_size=config.patch_size, stride=config.patch_size, bias=False
        )
        self.norm = nn.LayerNorm(config.width)

    def forward(self, views: Tensor) -> Tensor:
        """views: (B, V, C_in, H, W) -> tokens (B, V*h*w, width)."""
        b, v = views.shape[:2]
        x = self.proj(views.flatten(0, 1))  # (B*V, width, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B*V, h*w, width), row-major
        x = x.reshape(b, v * x.shape[1], x.shape[2])
        return torch.as_tensor(self.norm(x))
