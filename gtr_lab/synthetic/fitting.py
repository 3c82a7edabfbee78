"""Triplanes fitted to a known object: stand-ins for a network's output in tests and benchmarks.

`fit_triplane` optimises a triplane and its field MLPs (of any configuration's sizes) so that the density
crosses the surface level (10) on a given shape and the colour follows a given solid texture. The stages after
the network (marching cubes, refinement, baking) can then be checked and timed against that known object
without trained weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from gtr_backend.model import GTRConfig, TriplaneField, preset, sample_triplane

InsideFn = Callable[[Tensor], Tensor]  # points (P, 3) -> bool (P,)
ColorFn = Callable[[Tensor], Tensor]  # points (P, 3) -> rgb (P, 3)

SPHERE_RADIUS = 0.6


def sphere_inside(points: Tensor) -> Tensor:
    return points.norm(dim=-1) < SPHERE_RADIUS


def stripes(points: Tensor) -> Tensor:
    """A solid texture: red/blue bands along Y, a green ramp along X."""
    band = 0.5 + 0.5 * torch.sin(points[:, 1] * 12.0)
    return torch.stack([band, 0.3 + 0.4 * (points[:, 0] + 1) / 2, 1 - band], dim=-1).clamp(0, 1)


def fit_triplane(
    inside: InsideFn,
    color: ColorFn,
    config: GTRConfig | None = None,
    steps: int = 300,
    color_steps: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[TriplaneField, Tensor]:
    """A field and triplane (3, C, R, R) whose density is 20 inside `inside` and 0 outside (level 10 between),
    and whose colour is fitted to `color` for `color_steps` (default: all) of the steps."""
    config = config or preset("gtr-tiny", triplane_channels=16, plane_tokens=16, mlp_width=32)
    generator = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    field = TriplaneField(config).to(device)
    r = config.triplane_resolution
    triplane = torch.randn(3, config.triplane_channels, r, r, generator=generator, device=device).requires_grad_(True)
    optimizer = torch.optim.Adam([triplane, *field.parameters()], lr=2e-2)
    color_steps = steps if color_steps is None else color_steps
    for step in range(steps):
        points = torch.rand(8192, 3, generator=generator, device=device) * 2 - 1
        shell = torch.nn.functional.normalize(torch.randn(4096, 3, generator=generator, device=device), dim=-1)
        shell = shell * (SPHERE_RADIUS + 0.1 * torch.randn(4096, 1, generator=generator, device=device))
        points = torch.cat([points, shell.clamp(-1, 1)])
        features = sample_triplane(triplane[None], points[None])[0]
        density, rgb = field(features)
        target = inside(points).float() * 20.0
        loss = (density[:, 0] - target).square().mean() / 100
        if step < color_steps:
            loss = loss + (rgb - color(points)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for p in field.parameters():
        p.requires_grad_(False)
    return field.eval(), triplane.detach()
