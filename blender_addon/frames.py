"""Coordinate frames between Blender and the backend (pure math: mathutils only).

Blender's world is Z-up; the backend's world is Y-up (`gtr_backend.views.cameras`): a point (x, y, z) in
Blender is (x, z, -y) in the backend, a rotation by -90 degrees about X (the glTF convention too).
Blender cameras look down their local -Z with +Y up (OpenGL); the backend's cameras are OpenCV
camera-to-world matrices (look down +Z, +Y down): c2w_opencv = c2w_opengl @ diag(1, -1, -1, 1).

`Normalization` maps the captured object into the backend's working volume: its bounding sphere centred at
the origin with radius `contract.VIEW_RADIUS` (0.8), where the model was trained and where the default
cameras see every point whatever its direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from mathutils import Matrix, Vector

from .contract import contract

BLENDER_TO_BACKEND = Matrix(((1, 0, 0, 0), (0, 0, 1, 0), (0, -1, 0, 0), (0, 0, 0, 1)))
BACKEND_TO_BLENDER = BLENDER_TO_BACKEND.transposed()
OPENGL_TO_OPENCV = Matrix.Diagonal((1, -1, -1, 1))


def transform_points(points: np.ndarray, matrix: Matrix | np.ndarray) -> np.ndarray:
    """Points (P, 3) through a 4x4 affine matrix -> (P, 3) float64."""
    m = np.array(matrix, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ m[:3, :3].T + m[:3, 3]


def xyz(v: Vector) -> tuple[float, float, float]:
    """A Vector as a plain tuple (mathutils' stubs do not declare Vectors iterable)."""
    return (float(v.x), float(v.y), float(v.z))


@dataclass(frozen=True)
class Normalization:
    """Blender world -> backend world: p_backend = R (p - centre) * scale, R = BLENDER_TO_BACKEND."""

    centre: Vector
    scale: float

    @staticmethod
    def of_sphere(centre: Vector, radius: float) -> Normalization:
        """The sphere (Blender world) becomes the backend's sphere of radius VIEW_RADIUS at the origin."""
        return Normalization(centre, contract.VIEW_RADIUS / max(radius, 1e-9))

    @property
    def radius(self) -> float:
        """The radius, in Blender units, of the sphere that is mapped into the working volume."""
        return contract.VIEW_RADIUS / self.scale

    @property
    def matrix(self) -> Matrix:
        """4x4 Blender world -> backend world."""
        return BLENDER_TO_BACKEND @ Matrix.Scale(self.scale, 4) @ Matrix.Translation(xyz(-self.centre))

    @property
    def inverse(self) -> Matrix:
        return Matrix.Translation(xyz(self.centre)) @ Matrix.Scale(1 / self.scale, 4) @ BACKEND_TO_BLENDER


def camera_to_backend(matrix_world: Matrix, normalization: Normalization) -> Matrix:
    """A Blender camera's matrix_world (no scale) -> OpenCV camera-to-world in the backend frame."""
    c2w = (BLENDER_TO_BACKEND.to_3x3() @ matrix_world.to_3x3().normalized()).to_4x4()
    c2w.translation = normalization.matrix @ matrix_world.translation
    return c2w @ OPENGL_TO_OPENCV


def camera_from_backend(c2w: Matrix, normalization: Normalization) -> Matrix:
    """Inverse of `camera_to_backend`: the Blender camera matrix_world (unit scale)."""
    gl = c2w @ OPENGL_TO_OPENCV
    matrix_world = (BACKEND_TO_BLENDER.to_3x3() @ gl.to_3x3()).to_4x4()
    matrix_world.translation = normalization.inverse @ gl.translation
    return matrix_world


def orbit_camera(azimuth_deg: float, elevation_deg: float, distance: float) -> Matrix:
    """OpenCV c2w in the backend frame for the backend's orbit convention: position
    r (cos e cos a, sin e, cos e sin a), looking at the origin with the backend's +Y up."""
    import math

    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    position = Vector(tuple(distance * c for c in (math.cos(e) * math.cos(a), math.sin(e), math.cos(e) * math.sin(a))))
    forward = (-position).normalized()
    right = forward.cross(Vector((0, 1, 0))).normalized()
    down = cast(Vector, forward.cross(right))  # the stubs type cross() as float | Vector
    c2w = Matrix.Identity(4)
    for row in range(3):
        c2w[row][0], c2w[row][1] = xyz(right)[row], xyz(down)[row]
        c2w[row][2], c2w[row][3] = xyz(forward)[row], xyz(position)[row]
    return c2w


def matrix_rows(matrix: Matrix) -> list[list[float]]:
    return [[float(matrix[i][j]) for j in range(4)] for i in range(4)]
