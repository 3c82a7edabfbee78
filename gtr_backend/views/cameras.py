"""Cameras in the one world frame of `gtr_backend` (docs/method.md, section 3).

World: the object lies inside [-1, 1]^3, +Y is up. Cameras are OpenCV-style: x right, y down, z forward;
poses are camera-to-world 4x4 matrices (c2w). Intrinsics are (fx, fy, cx, cy) in pixels with pixel centres
at (i + 0.5): pixel column i covers [i, i + 1).

Orbit convention (shared with the Zero123++ grid): a camera at azimuth a and elevation e sits at
r * (cos e cos a, sin e, cos e sin a) and looks at the origin with +Y up; azimuth 0 is on +X, 90 on +Z.
A field of view is measured across the image's larger side (Blender's "Auto" sensor fit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import ViewError

# Right-multiplying an OpenGL-style c2w (x right, y up, z backward; Blender's cameras) by this flips it to OpenCV.
OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def look_at(
    eye: Sequence[float] | Tensor, target: Sequence[float] = (0.0, 0.0, 0.0), up: Sequence[float] = (0.0, 1.0, 0.0)
) -> Tensor:
    """OpenCV c2w (4, 4) float64 of a camera at `eye` looking at `target`, image-up as close to `up` as possible."""
    eye_t = torch.as_tensor(eye, dtype=torch.float64)
    forward = torch.as_tensor(target, dtype=torch.float64) - eye_t
    if forward.norm() < 1e-12:
        raise ViewError("look_at: the camera sits on its target; move it away")
    forward = forward / forward.norm()
    up_t = torch.as_tensor(up, dtype=torch.float64)
    right = torch.linalg.cross(forward, up_t)
    if right.norm() < 1e-9:  # looking straight along `up`: any right vector will do, pick a stable one
        right = torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye_t
    return c2w


def orbit_position(azimuth_deg: float, elevation_deg: float, distance: float) -> Tensor:
    """Camera centre (3,) float64 on the orbit convention of this module."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    return (
        torch.tensor([math.cos(e) * math.cos(a), math.sin(e), math.cos(e) * math.sin(a)], dtype=torch.float64)
        * distance
    )


def orbit_poses(azimuths_deg: Sequence[float], elevations_deg: float | Sequence[float], distance: float) -> Tensor:
    """c2w (N, 4, 4) float64 for cameras on an orbit around the origin, one per azimuth."""
    if isinstance(elevations_deg, (int, float)):
        elevations_deg = [float(elevations_deg)] * len(azimuths_deg)
    if len(elevations_deg) != len(azimuths_deg):
        raise ViewError(f"orbit: {len(azimuths_deg)} azimuths but {len(elevations_deg)} elevations")
    if distance <= 0:
        raise ViewError(f"orbit: camera distance must be positive, got {distance}")
    return torch.stack(
        [look_at(orbit_position(a, e, distance)) for a, e in zip(azimuths_deg, elevations_deg, strict=True)]
    )


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> Tensor:
    """(fx, fy, cx, cy) float64 of a centred pinhole whose FoV spans the image's larger side."""
    if not 0.0 < fov_deg < 180.0:
        raise ViewError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    focal = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([focal, focal, width / 2, height / 2], dtype=torch.float64)


def invert_pose(matrix: Tensor, where: str) -> Tensor:
    """Inverse of a 4x4 pose (world-to-camera <-> camera-to-world); a singular matrix is a `ViewError`."""
    m = matrix.to(torch.float64)
    if not torch.isfinite(m).all():
        raise ViewError(f"{where}: the camera matrix contains NaN or Inf")
    if abs(float(torch.linalg.det(m[:3, :3]))) < 1e-8:
        raise ViewError(f"{where}: the camera matrix is singular (its rotation part has determinant 0)")
    if not torch.allclose(m[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-6):
        raise ViewError(f"{where}: the last row of the camera matrix is {m[3].tolist()}, not [0, 0, 0, 1]")
    return torch.linalg.inv(m)


def pose_problem(c2w: Tensor, intrinsics: Tensor, width: int, height: int) -> str | None:
    """Why a camera cannot see the object, or None if it can.

    c2w (4, 4): must be rigid (orthonormal rotation with determinant +1, last row 0 0 0 1), sit outside the
    object's box [-1, 1]^3 and look towards the world origin (the object's centre): the origin must lie in
    front of the camera and project near the image (within half an image of its border).
    """
    m = c2w.detach().to("cpu", torch.float64)
    rot = m[:3, :3]
    det = float(torch.linalg.det(rot))
    if abs(det) < 1e-8:
        return "the pose is singular (its rotation part has determinant 0)"
    if not torch.allclose(m[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-6):
        return f"the last row of the pose is {m[3].tolist()}, not [0, 0, 0, 1]"
    if (rot.T @ rot - torch.eye(3, dtype=torch.float64)).abs().max() > 1e-3:
        return "the pose is not rigid: its rotation part is not orthonormal (scaled or sheared)"
    if det < 0:
        return "the pose is a reflection (determinant -1): check the handedness of the camera axes"
    position = m[:3, 3]
    if float(position.abs().max()) < 1.0:
        return (
            f"the camera sits at ({position[0]:.2f}, {position[1]:.2f}, {position[2]:.2f}), inside the object's box "
            "[-1, 1]^3; cameras must look at the object from outside it (about 2 to 4 units from the centre): "
            "check the scene's units or scale the cameras' positions"
        )
    centre_cam = rot.T @ (-position)  # the world origin in camera coordinates
    if centre_cam[2] <= 1e-6:
        return (
            "the camera looks away from the object (the world origin is behind it); the object must sit "
            "in [-1, 1]^3 with the cameras looking at it: check OpenCV vs OpenGL axes and "
            "camera-to-world vs world-to-camera"
        )
    fx, fy, cx, cy = intrinsics.detach().cpu().tolist()
    u = fx * float(centre_cam[0] / centre_cam[2]) + cx
    v = fy * float(centre_cam[1] / centre_cam[2]) + cy
    if not (-0.5 * width <= u <= 1.5 * width and -0.5 * height <= v <= 1.5 * height):
        return (
            f"the camera looks away from the object: the world origin projects to pixel ({u:.0f}, {v:.0f}), "
            f"far outside the {width}x{height} image; check the pose convention and that the object is "
            "centred at the origin"
        )
    return None
