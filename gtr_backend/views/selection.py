"""Which views each stage uses when there are many.

- The network was trained on 4 views on an orbit (azimuths a quarter-turn apart at `ORBIT_ELEVATION_DEG`):
  `network_views` picks the views closest to such an orbit, so it sees what it knows whatever else was captured.
- The geometry and texture stages use every view up to `MAX_FIT_VIEWS`; beyond that `spread_views` keeps the
  network's views plus the ones farthest apart in direction, so the cost stays bounded and grows linearly up
  to the cap (a caller says so to the user).
Directions are those from the object's centre (the world origin) to each camera; world Y is up.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..contract import MAX_FIT_VIEWS, ORBIT_ELEVATION_DEG


def _directions(c2w: Tensor) -> Tensor:
    return F.normalize(c2w[:, :3, 3].double(), dim=-1)


def network_views(c2w: Tensor, count: int = 4) -> list[int]:
    """Indices of the `count` views (of N camera-to-world poses (N, 4, 4)) that best make an orbit of `count`
    evenly spaced azimuths at the training elevation; all of them (in order) when there are no more."""
    n = len(c2w)
    if n <= count:
        return list(range(n))
    d = _directions(c2w)
    elevation = torch.rad2deg(torch.asin(d[:, 1].clamp(-1, 1)))
    azimuth = torch.rad2deg(torch.atan2(d[:, 2], d[:, 0]))
    best: tuple[float, list[int]] = (math.inf, [])
    for start in range(n):  # each view in turn as the orbit's first
        chosen, cost = [start], 0.0
        for k in range(1, count):
            target = azimuth[start] + 360.0 * k / count
            off = ((azimuth - target + 180) % 360 - 180).abs() + (elevation - ORBIT_ELEVATION_DEG).abs()
            off[chosen] = math.inf
            pick = int(off.argmin())
            chosen.append(pick)
            cost += float(off[pick])
        cost += float((elevation[start] - ORBIT_ELEVATION_DEG).abs())
        if cost < best[0]:
            best = (cost, chosen)
    return sorted(best[1])


def spread_views(c2w: Tensor, limit: int = MAX_FIT_VIEWS, keep: list[int] | None = None) -> list[int]:
    """Indices of at most `limit` views: `keep` first (default: the network's views), then, one at a time, the
    view whose direction is farthest from every one already chosen. All views when there are no more."""
    n = len(c2w)
    if n <= limit:
        return list(range(n))
    chosen = list(keep if keep is not None else network_views(c2w))[:limit]
    d = _directions(c2w)
    closest = (d @ d[chosen].T).max(dim=1).values if chosen else torch.full((n,), -2.0, dtype=d.dtype)
    while len(chosen) < limit:
        closest[chosen] = 2.0
        pick = int(closest.argmin())
        chosen.append(pick)
        closest = torch.maximum(closest, d @ d[pick])
    return sorted(chosen)
