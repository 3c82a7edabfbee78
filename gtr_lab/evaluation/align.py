"""Putting a predicted shape in the ground truth's frame before 3D metrics (docs/method.md, section 7).

`normalize_points`: re-centre on the bounding box and scale its longest side to 2, i.e. into [-1, 1]^3.
`icp`: rigid iterative closest point from a source to a target point set; each iteration pairs every source
point with its nearest target point and solves the best rotation and translation in closed form (Kabsch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .metrics import nearest_distances


def normalize_points(points: Tensor) -> tuple[Tensor, Tensor, float]:
    """(P, 3) -> (points in [-1, 1]^3, the centre subtracted (3,), the scale applied)."""
    low, high = points.min(0).values, points.max(0).values
    centre = (low + high) / 2
    scale = 2.0 / float((high - low).max().clamp_min(1e-12))
    return (points - centre) * scale, centre, scale


@dataclass(frozen=True)
class RigidTransform:
    rotation: Tensor  # (3, 3)
    translation: Tensor  # (3,)

    def apply(self, points: Tensor) -> Tensor:
        return points @ self.rotation.T + self.translation


def kabsch(source: Tensor, target: Tensor) -> RigidTransform:
    """The rotation and translation that best map paired points source (P, 3) onto target (P, 3)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    h = (source - mu_s).T.double() @ (target - mu_t).double()
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.T @ u.T))
    correction = torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=torch.float64))
    rotation = (vt.T @ correction @ u.T).to(source.dtype)
    return RigidTransform(rotation, mu_t - mu_s @ rotation.T)


def icp(source: Tensor, target: Tensor, iterations: int = 30, tolerance: float = 1e-7) -> tuple[Tensor, RigidTransform]:
    """Align source (P, 3) to target (Q, 3); returns the moved source and the total transform."""
    total = RigidTransform(torch.eye(3, dtype=source.dtype), torch.zeros(3, dtype=source.dtype))
    moved = source
    previous = float("inf")
    for _ in range(iterations):
        nearest = torch.cdist(moved, target, compute_mode="donot_use_mm_for_euclid_dist").argmin(dim=1)
        step = kabsch(moved, target[nearest])
        moved = step.apply(moved)
        total = RigidTransform(step.rotation @ total.rotation, step.apply(total.translation[None])[0])
        error = float(nearest_distances(moved, target).mean())
        if previous - error < tolerance:
            break
        previous = error
    return moved, total
