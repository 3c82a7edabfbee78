"""Upsampler: plane features (B, 3, width, n, n) -> triplane (B, 3, C, n*f, n*f).

`PixelShuffleUpsampler` (GTR): a 1x1 convolution to C*f*f channels, then PixelShuffle(f).
`DeconvUpsampler` (LRM, the paper's ablation): a transposed convolution with kernel = stride = f.
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import GTRConfig


class PixelShuffleUpsampler(nn.Module):
    def __init__(self, config: GTRConfig) -> None:
        super().__init__()
        f = config.upsample_factor
        self.proj = nn.Conv2d(config.width, config.triplane_channels * f * f, kernel_size=1)
        self.shuffle = nn.PixelShuffle(f)

    def forward(self, planes: Tensor) -> Tensor:
        b, p = planes.shape[:2]
        x = self.shuffle(self.proj(planes.flatten(0, 1)))
        return x.reshape(b, p, *x.shape[1:])


class DeconvUpsampler(nn.Module):
    def __init__(self, config: GTRConfig) -> None:
        super().__init__()
        f = config.upsample_factor
        self.deconv = nn.ConvTranspose2d(config.width, config.triplane_channels, kernel_size=f, stride=f)

    def forward(self, planes: Tensor) -> Tensor:
        b, p = planes.shape[:2]
        x = self.deconv(planes.flatten(0, 1))
        return x.reshape(b, p, *x.shape[1:])


def build_upsampler(config: GTRConfig) -> nn.Module:
    if config.upsampler == "deconv":
        return DeconvUpsampler(config)
    return PixelShuffleUpsampler(config)
