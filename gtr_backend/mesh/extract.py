"""From a triplane's density to a mesh: density grid -> sdf -> marching cubes -> world-frame mesh.

The grid has `resolution`^3 points spanning [-1, 1]^3 (point i at -1 + 2 i / (resolution - 1)), queried
`chunk_points` at a time. sdf = -(density - level) with level 10 (gtr.md section 4): inside negative.
Marching cubes runs on diso's CUDA DiffMC when that optional package is installed and the grid is on a GPU,
and on this package's PyTorch implementation otherwise; both are differentiable with respect to the grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ..errors import GTRError
from .marching_cubes import marching_cubes
from .mesh import Mesh

DENSITY_LEVEL = 10.0
McBackend = Literal["auto", "torch", "diso"]
DensityFn = Callable[[Tensor], Tensor]  # points (P, 3) -> density (P, 1)


class MeshError(GTRError):
    """The density field has no surface to extract."""


def grid_points(resolution: int, device: torch.device | str = "cpu") -> Tensor:
    """(R, R, R, 3) world coordinates of the grid points, indexed [i, j, k] <-> (x, y, z)."""
    axis = torch.linspace(-1.0, 1.0, resolution, device=device)
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)


def density_grid(
    density: DensityFn, resolution: int, device: torch.device | str = "cpu", chunk_points: int = 1 << 20
) -> Tensor:
    """(R, R, R) density on the grid; the field is queried `chunk_points` points at a time."""
    points = grid_points(resolution, device).reshape(-1, 3)
    values = [density(points[i : i + chunk_points]).reshape(-1) for i in range(0, points.shape[0], chunk_points)]
    return torch.cat(values).reshape(resolution, resolution, resolution)


def diso_available() -> bool:
    try:
        import diso  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def _diso_marching_cubes(sdf: Tensor) -> tuple[Tensor, Tensor]:
    from diso import DiffMC

    vertices, faces = DiffMC(dtype=torch.float32)(sdf.float().contiguous(), None, isovalue=0.0, normalize=False)
    return vertices, faces.long()


def sdf_to_mesh(sdf: Tensor, backend: McBackend = "auto") -> Mesh:
    """sdf (R, R, R) on the grid of `grid_points`, inside negative -> world-frame mesh.

    Raises `MeshError` when the field has no surface (everything outside, or everything inside).
    """
    lowest, highest = float(sdf.detach().min()), float(sdf.detach().max())
    if lowest >= 0:
        raise MeshError(
            "no surface: the density never reaches the surface level anywhere in the box [-1, 1]^3, so there "
            "is nothing to mesh. Check that the views show the object with correct masks and cameras, and that "
            "the weights suit them"
        )
    if highest < 0:
        raise MeshError(
            "no surface: the density is above the surface level everywhere in the box [-1, 1]^3 (the object "
            "fills the whole box). Check the cameras' distance and field of view, and the weights"
        )
    use_diso = backend == "diso" or (backend == "auto" and sdf.is_cuda and diso_available())
    if backend == "diso" and not (sdf.is_cuda and diso_available()):
        raise GTRError("the diso marching cubes needs the optional `diso` package and a CUDA GPU")
    vertices, faces = _diso_marching_cubes(sdf) if use_diso else marching_cubes(sdf)
    resolution = sdf.shape[0]
    return Mesh(vertices * (2.0 / (resolution - 1)) - 1.0, faces)


def extract_mesh(
    density: DensityFn,
    resolution: int,
    device: torch.device | str = "cpu",
    level: float = DENSITY_LEVEL,
    backend: McBackend = "auto",
    chunk_points: int = 1 << 20,
) -> Mesh:
    """Mesh of the level set density = `level` of a density field (differentiable if grad is enabled)."""
    sdf = -(density_grid(density, resolution, device, chunk_points) - level)
    return sdf_to_mesh(sdf, backend)
