import math

import pytest
import torch

from gtr_backend.errors import ViewError
from gtr_backend.views.cameras import (
    intrinsics_from_fov,
    invert_pose,
    look_at,
    orbit_poses,
    orbit_position,
    pose_problem,
)


def project(c2w: torch.Tensor, k: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    cam = c2w[:3, :3].T @ (point - c2w[:3, 3])
    return torch.stack([k[0] * cam[0] / cam[2] + k[2], k[1] * cam[1] / cam[2] + k[3]])


def test_look_at_builds_an_opencv_camera():
    c2w = look_at([0.0, 0.0, 3.0])
    right, down, forward = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2]
    assert torch.allclose(right, torch.tensor([1.0, 0, 0], dtype=torch.float64))
    assert torch.allclose(down, torch.tensor([0.0, -1, 0], dtype=torch.float64))  # image y down = world -Y
    assert torch.allclose(forward, torch.tensor([0.0, 0, -1], dtype=torch.float64))
    # A point above the origin appears above the image centre (smaller row index).
    k = intrinsics_from_fov(30.0, 64, 64)
    assert project(c2w, k, torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64))[1] < 32


def test_orbit_convention_and_pole():
    assert torch.allclose(orbit_position(0, 0, 2), torch.tensor([2.0, 0, 0], dtype=torch.float64))
    assert torch.allclose(orbit_position(90, 0, 2), torch.tensor([0.0, 0, 2], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(orbit_position(0, 90, 2), torch.tensor([0.0, 2, 0], dtype=torch.float64), atol=1e-12)
    poses = orbit_poses([0, 90, 180, 270, 45], [20, 20, 20, 20, 90], 2.7)
    k = intrinsics_from_fov(40.0, 32, 32)
    for c2w in poses:  # every camera is rigid and looks at the origin, the pole included
        assert pose_problem(c2w, k, 32, 32) is None
        assert torch.allclose(
            project(c2w, k, torch.zeros(3, dtype=torch.float64)),
            torch.tensor([16.0, 16.0], dtype=torch.float64),
            atol=1e-9,
        )


def test_fov_spans_the_larger_side():
    fx, fy, cx, cy = intrinsics_from_fov(90.0, 512, 256).tolist()
    assert fx == pytest.approx(256.0) and fy == pytest.approx(256.0)
    assert (cx, cy) == (256.0, 128.0)
    with pytest.raises(ViewError, match="between 0 and 180"):
        intrinsics_from_fov(180.0, 10, 10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.__setitem__((slice(0, 3), slice(0, 3)), 0.0), "singular"),
        (lambda m: m.__setitem__((slice(0, 3), 0), m[:3, 0] * 2), "not rigid"),
        (lambda m: m.__setitem__((slice(0, 3), 0), -m[:3, 0]), "reflection"),
        (
            lambda m: m.__setitem__((slice(0, 3), 2), -m[:3, 2]) or m.__setitem__((slice(0, 3), 1), -m[:3, 1]),
            "looks away",
        ),
        (lambda m: m.__setitem__((3, 0), 1.0), "last row"),
    ],
)
def test_pose_problems_are_named(change, message):
    c2w = look_at([0.0, 0.0, 3.0])
    change(c2w)
    assert message in pose_problem(c2w, intrinsics_from_fov(30.0, 64, 64), 64, 64)


def test_origin_far_outside_the_image_is_looking_away():
    c2w = look_at([0.0, 0.0, 3.0], target=(5.0, 0.0, 0.0))
    problem = pose_problem(c2w, intrinsics_from_fov(30.0, 64, 64), 64, 64)
    assert problem is not None and "looks away" in problem


def test_invert_pose_rejects_singular_and_nan():
    with pytest.raises(ViewError, match="singular"):
        invert_pose(torch.zeros(4, 4), "cam")
    with pytest.raises(ViewError, match="NaN"):
        invert_pose(torch.full((4, 4), math.nan), "cam")
    c2w = look_at([1.0, 2.0, 3.0])
    assert torch.allclose(invert_pose(invert_pose(c2w, "a"), "b"), c2w)
