"""Texture patterns as colour functions of world points: printed text, fine stripes, checks, dots, grids.

Text is drawn with Pillow (its built-in scalable font at any size, or its small bitmap font) into an image
that is then projected onto the surface: `planar` along a world axis (a label on a box face), or
`cylindrical` around the Y axis (a label wrapped round a can). The other patterns are analytic.
All functions take points (P, 3) in the object's frame and return rgb (P, 3) in [0, 1] (and a mask (P,)
for decals: where the decal covers the point).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

Colour = tuple[float, float, float]


def text_image(
    lines: Sequence[tuple[str, int]],
    width: int,
    height: int,
    ink: Colour = (0.05, 0.05, 0.1),
    paper: Colour = (0.95, 0.93, 0.85),
    bitmap_font: bool = False,
) -> Tensor:
    """An image (H, W, 3) in [0, 1] with `lines` of (text, pixel size) centred one under the other.

    `bitmap_font` uses Pillow's fixed-size bitmap font (a second typeface) instead of its scalable one."""
    image = Image.new("RGB", (width, height), tuple(int(c * 255) for c in paper))
    draw = ImageDraw.Draw(image)
    fonts = [ImageFont.load_default_imagefont() if bitmap_font else ImageFont.load_default(size) for _, size in lines]
    boxes = [draw.textbbox((0, 0), text, font=font) for (text, _), font in zip(lines, fonts, strict=True)]
    heights = [b[3] - b[1] for b in boxes]
    gap = max(4, height // 40)
    y = (height - sum(heights) - gap * (len(lines) - 1)) / 2
    for (text, _), font, box, h in zip(lines, fonts, boxes, heights, strict=True):
        draw.text(
            ((width - (box[2] - box[0])) / 2 - box[0], y - box[1]),
            text,
            font=font,
            fill=tuple(int(c * 255) for c in ink),
        )
        y += h + gap
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)


def _sample(image: Tensor, u: Tensor, v: Tensor) -> Tensor:
    """Bilinear lookup of image (H, W, 3) at u, v in [0, 1] (v = 0 at the image's top) -> (P, 3)."""
    grid = torch.stack([u * 2 - 1, v * 2 - 1], -1).reshape(1, -1, 1, 2)
    out = F.grid_sample(image.permute(2, 0, 1)[None].to(u), grid, mode="bilinear", align_corners=False)
    return out[0, :, :, 0].T


def planar(
    image: Tensor, points: Tensor, axis: int, centre: Sequence[float], size: tuple[float, float]
) -> tuple[Tensor, Tensor]:
    """Project `image` along world `axis` (0 = x, 2 = z) onto the points, on the side where that coordinate is
    positive: the image spans `size` (width, height) around `centre` (its horizontal and vertical world
    coordinates). Returns rgb (P, 3) and mask (P,)."""
    horizontal = 2 if axis == 0 else 0
    u = (points[:, horizontal] - centre[0]) / size[0] + 0.5
    if axis == 0:
        u = 1 - u  # seen from +x, world z grows to the left
    v = 0.5 - (points[:, 1] - centre[1]) / size[1]
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1) & (points[:, axis] > 0)
    return _sample(image, u.clamp(0, 1), v.clamp(0, 1)), inside


def cylindrical(
    image: Tensor, points: Tensor, y_range: tuple[float, float], turns: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Wrap `image` round the Y axis between heights y_range, repeated `turns` times round the circle."""
    angle = torch.atan2(points[:, 0], points[:, 2])
    u = torch.remainder(angle / (2 * math.pi) * turns, 1.0)
    v = (y_range[1] - points[:, 1]) / (y_range[1] - y_range[0])
    inside = (v >= 0) & (v <= 1)
    return _sample(image, u, v.clamp(0, 1)), inside


def mix(a: Colour, b: Colour, t: Tensor) -> Tensor:
    """a + (b - a) t per point: t (P,) -> (P, 3)."""
    ta, tb = torch.tensor(a, device=t.device), torch.tensor(b, device=t.device)
    return ta + (tb - ta) * t.clamp(0, 1)[:, None]


def stripes(points: Tensor, direction: Sequence[float], frequency: float) -> Tensor:
    """Hard stripes: 1 or 0 per point, `frequency` stripe pairs per 2 pi world units along `direction`."""
    d = torch.tensor(direction, dtype=points.dtype, device=points.device)
    return (torch.sin(points @ (d / d.norm()) * frequency) > 0).float()


def checks(points: Tensor, cells_per_unit: float) -> Tensor:
    return (torch.floor(points * cells_per_unit).sum(-1) % 2).abs()


def dots(points: Tensor, spacing: float, radius: float) -> Tensor:
    """1 inside small spheres on a 3D lattice (polka dots on the surface), else 0."""
    offset = torch.remainder(points, spacing) - spacing / 2
    return (offset.norm(dim=-1) < radius).float()


def grid_lines(points: Tensor, spacing: float, width: float) -> Tensor:
    """1 on thin lines of a latitude / longitude-like lattice (planes every `spacing` along each axis)."""
    distance = (torch.remainder(points + spacing / 2, spacing) - spacing / 2).abs()
    return (distance.min(dim=-1).values < width / 2).float()
