"""Per-pixel rays and the model's 10-channel input maps (docs/method.md, section 2).

For pixel (i, j) (column i, row j) of a view with intrinsics (fx, fy, cx, cy) and OpenCV pose c2w = [R | o]:
    d = normalize(R @ ((i + 0.5 - cx) / fx, (j + 0.5 - cy) / fy, 1)),   origin o (the camera centre),
    Pluecker moment m = cross(d, o)  (this sign, as the released model was trained).
Model input per pixel, in this order: RGB over white (3), d (3), m (3), mask (1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .viewset import ViewSet


def pixel_rays(intrinsics: Tensor, c2w: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """intrinsics (N, 4), c2w (N, 4, 4) -> origins (N, H, W, 3) and unit directions (N, H, W, 3), world frame."""
    dtype = torch.promote_types(intrinsics.dtype, torch.float32)
    device = intrinsics.device
    jj, ii = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    k = intrinsics.to(dtype)[:, :, None, None]  # (N, 4, 1, 1)
    x = (ii - k[:, 2]) / k[:, 0]  # (N, H, W)
    y = (jj - k[:, 3]) / k[:, 1]
    cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)  # (N, H, W, 3) camera-frame directions
    pose = c2w.to(dtype)
    directions = torch.einsum("nab,nhwb->nhwa", pose[:, :3, :3], cam)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = pose[:, None, None, :3, 3].expand_as(directions)
    return origins, directions


def pluecker_rays(intrinsics: Tensor, c2w: Tensor, height: int, width: int) -> Tensor:
    """(N, 6, H, W): unit direction d then moment cross(d, o), channels first."""
    origins, directions = pixel_rays(intrinsics, c2w, height, width)
    moment = torch.linalg.cross(directions, origins, dim=-1)
    return torch.cat([directions, moment], dim=-1).permute(0, 3, 1, 2)


def input_maps(rgb: Tensor, mask: Tensor, intrinsics: Tensor, c2w: Tensor) -> Tensor:
    """rgb (N, 3, H, W), mask (N, 1, H, W), intrinsics (N, 4), c2w (N, 4, 4) -> model input (N, 10, H, W)."""
    height, width = rgb.shape[-2:]
    rays = pluecker_rays(intrinsics, c2w, height, width).to(rgb.dtype)
    return torch.cat([rgb * mask + (1 - mask), rays, mask], dim=1)


def model_inputs(views: ViewSet) -> Tensor:
    """(N, 10, H, W) float32 model input of a view set (resize it to the model's resolution first)."""
    return input_maps(views.rgb, views.mask, views.intrinsics, views.c2w)
