"""Triplane sampling and the field MLPs: world points in, density and colour out.

World frame (docs/method.md, section 3): the object lies in [-1, 1]^3, Y up. A point (x, y, z) is looked up on the
planes in the order (xy, xz, yz); each pair is grid_sample's (x, y), i.e. the first named coordinate runs
along a plane's width (columns) and the second along its height (rows). Bilinear, align_corners=False,
border padding. The 3 x C samples are flattened channel-major, then plane: feature index = c * 3 + plane.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import GTRConfig

# For each plane, the two world axes used as grid_sample's (x, y): xy, xz, yz.
PLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))


def sample_triplane(triplane: Tensor, points: Tensor) -> Tensor:
    """Bilinear triplane features at world points.

    triplane: (B, 3, C, R, R); points: (B, N, 3) in [-1, 1]^3 (outside is clamped to the border).
    Returns (B, N, 3*C) with feature index c*3 + plane.
    """
    b, planes, c, r, _ = triplane.shape
    grid = torch.stack([points[..., list(axes)] for axes in PLANE_AXES], dim=1)  # (B, 3, N, 2)
    grid = grid.reshape(b * planes, 1, -1, 2).to(triplane.dtype)
    feats = F.grid_sample(
        triplane.reshape(b * planes, c, r, r), grid, mode="bilinear", padding_mode="border", align_corners=False
    )  # (B*3, C, 1, N)
    feats = feats.reshape(b, planes, c, -1)  # (B, 3, C, N)
    return feats.permute(0, 3, 2, 1).reshape(b, -1, c * planes)  # (B, N, C*3), index c*3 + plane


class MLP(nn.Module):
    """Linear layers with GELU between them (none after the last); `layers` holds the Linear modules only."""

    def __init__(self, in_features: int, width: int, out_features: int, num_layers: int) -> None:
        super().__init__()
        sizes = [in_features] + [width] * (num_layers - 1) + [out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.gelu(x)
        return x


def density_activation(raw: Tensor) -> Tensor:
    """Raw MLP output -> non-negative density (softplus)."""
    return F.softplus(raw)


def color_activation(raw: Tensor) -> Tensor:
    """Raw MLP output -> RGB, a sigmoid stretched by 0.001 each side so 0 and 1 are reachable."""
    return torch.sigmoid(raw) * (1 + 2e-3) - 1e-3


class TriplaneField(nn.Module):
    """Density MLP f_d and colour MLP f_c over triplane features (or one joint MLP, the paper's ablation)."""

    def __init__(self, config: GTRConfig) -> None:
        super().__init__()
        features = 3 * config.triplane_channels
        self.joint = config.joint_mlp
        if self.joint:
            self.mlp = MLP(features, config.mlp_width, 4, max(config.density_layers, config.color_layers))
        else:
            self.density_mlp = MLP(features, config.mlp_width, 1, config.density_layers)
            self.color_mlp = MLP(features, config.mlp_width, 3, config.color_layers)

    def density(self, features: Tensor) -> Tensor:
        """features (..., 3C) -> density (..., 1)."""
        raw = self.mlp(features)[..., :1] if self.joint else self.density_mlp(features)
        return density_activation(raw)

    def color(self, features: Tensor) -> Tensor:
        """features (..., 3C) -> RGB in [-0.001, 1.001] (..., 3)."""
        raw = self.mlp(features)[..., 1:] if self.joint else self.color_mlp(features)
        return color_activation(raw)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """features (..., 3C) -> (density (..., 1), rgb (..., 3))."""
        if self.joint:
            raw = self.mlp(features)
            return density_activation(raw[..., :1]), color_activation(raw[..., 1:])
        return self.density(features), self.color(features)

    def query(self, triplane: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
        """triplane (B, 3, C, R, R), points (B, N, 3) -> (density (B, N, 1), rgb (B, N, 3)), float32."""
        return self.forward(sample_triplane(triplane.float(), points.float()))
