"""Which views the network and the fits use when there are many."""

import torch

from gtr_backend.contract import MAX_FIT_VIEWS
from gtr_backend.views.cameras import orbit_poses
from gtr_backend.views.selection import network_views, spread_views

# A capture like Render Selected's: two rings and the poles first, the training orbit (20 degrees up, a quarter
# turn apart, starting at 30 degrees) hidden in the middle.
AZIMUTHS = [45.0, 135.0, 225.0, 315.0, 0.0, 0.0, 30.0, 120.0, 210.0, 300.0, 90.0, 270.0]
ELEVATIONS = [50.0] * 4 + [88.0, -88.0] + [20.0] * 4 + [-25.0, -25.0]


def test_the_network_gets_the_four_views_of_its_training_orbit():
    c2w = orbit_poses(AZIMUTHS, ELEVATIONS, 2.7)
    assert network_views(c2w) == [6, 7, 8, 9]
    assert network_views(c2w[:3]) == [0, 1, 2]  # fewer than four: all of them


def test_many_views_are_capped_keeping_the_networks_and_the_most_spread():
    azimuths = [360.0 * i / 100 for i in range(100)]
    elevations = [20.0 + 40.0 * ((i * 37) % 3 - 1) for i in range(100)]
    c2w = orbit_poses(azimuths, elevations, 2.7)
    chosen = spread_views(c2w, 10)
    assert len(chosen) == 10 and set(network_views(c2w)) <= set(chosen)
    directions = torch.nn.functional.normalize(c2w[:, :3, 3], dim=-1)

    def closest_pair(indices: list[int]) -> float:
        d = directions[indices]
        similarity = d @ d.T - 2 * torch.eye(len(indices), dtype=d.dtype)
        return float(similarity.max())

    assert closest_pair(chosen) < closest_pair(list(range(10)))  # better spread than the first ten
    assert spread_views(c2w[:MAX_FIT_VIEWS]) == list(range(MAX_FIT_VIEWS))  # up to the cap: every view
    assert len(spread_views(c2w)) == MAX_FIT_VIEWS
