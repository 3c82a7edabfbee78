"""Pixel arithmetic every stage shares (the scores are in `metrics`): one conversion to 8 bits, one fill.

`to_uint8(image)`: values in [0, 1] (any shape) -> uint8 tensor, rounded to the nearest of 0..255.
`pull_push(values, filled)`: fill the empty cells of an image (H, W, C) or a volume (D, H, W, C) from the
filled ones (texture gutters, and the calm colour volume of `refine.projection`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_uint8(image: Tensor) -> Tensor:
    return (image.detach().clamp(0, 1) * 255).round().to(torch.uint8)


def pull_push(image: Tensor, filled: Tensor, grow: int = 3) -> Tensor:
    """Fill every empty cell: image (H, W, C) or volume (D, H, W, C), filled (H, W) or (D, H, W) bool -> same
    shape as `image`. First `grow` rounds of dilation (each empty cell next to filled ones takes their mean), so
    the gutter a texture chart's bilinear and first mip lookups read holds that chart's own colours, not a
    neighbour's; then one pull-push pass fills the rest: each remaining cell takes the mean of the filled ones
    in the smallest enclosing block of a mip pyramid (2x2, 4x4, ...), in O(cells) whatever the distance."""
    dims = filled.dim()
    pool = F.avg_pool2d if dims == 2 else F.avg_pool3d
    order = (dims, *range(dims))  # channels first
    values = (image * filled[..., None]).permute(*order)[None]
    weight = filled[None, None].to(image.dtype)
    for _ in range(grow):  # 3x3(x3) box means of the premultiplied values and of the weights, in one pass
        total = pool(torch.cat([values, weight], dim=1), 3, stride=1, padding=1)
        new = (total[:, -1:] > 0) & (weight == 0)
        values = torch.where(new, total[:, :-1] / total[:, -1:].clamp_min(1e-12), values)
        weight = torch.where(new, torch.ones_like(weight), weight)
    levels = [torch.cat([values, weight], dim=1)]  # premultiplied values and their weight, per mip level
    while min(levels[-1].shape[2:]) > 1:  # pull: means, level by level
        levels.append(pool(levels[-1], 2, ceil_mode=True))
    coarse = levels[-1][:, :-1] / levels[-1][:, -1:].clamp_min(1e-12)
    for level in reversed(levels[:-1]):  # push: empty cells take the coarser level's value
        up = F.interpolate(coarse, scale_factor=2, mode="nearest")
        for axis, size in enumerate(level.shape[2:]):
            up = up.narrow(2 + axis, 0, size)
        weight = level[:, -1:]
        coarse = torch.where(weight > 0, level[:, :-1] / weight.clamp_min(1e-12), up)
    return coarse[0].permute(*range(1, dims + 1), 0)
