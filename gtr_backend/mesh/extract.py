"""From a triplane's density to a mesh: density grid -> sdf -> marching cubes -> world-frame mesh.

The grid has `resolution`^3 points spanning [-1, 1]^3 (point i at -1 + 2 i / (resolution - 1)), queried
`chunk_points` at a time. sdf = -(density - level) with level 10 (docs/method.md, section 4): inside negative.
Marching cubes runs on diso's CUDA DiffMC when that optional package is installed and the grid is on a GPU,
and on this package's PyTorch implementation otherwise; both are differentiable with respect to the grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
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
    density: DensityFn,
    resolution: int,
    device: torch.device | str = "cpu",
    chunk_points: int = 1 << 20,
    where: Tensor | None = None,
    level: float = DENSITY_LEVEL,
    coarse_to_fine: bool = True,
) -> Tensor:
    """(R, R, R) density on the grid, queried coarse to fine: first every other point along each axis, then
    the full grid only within one coarse cell of where the coarse values cross `level`; elsewhere the coarse
    values are interpolated (they are far from the surface, so only their side of `level` matters).

    `where` (R, R, R) bool limits the queries (points outside it read 0). A part thinner than two grid steps can
    fall between the coarse points and be missed; the geometry fit to the views restores such parts.
    `coarse_to_fine=False` queries every point (training differentiates through all of them)."""
    points = grid_points(resolution, device)
    if not coarse_to_fine:
        return _query(density, points, where, chunk_points)
    # A coarse grid over the same box, evenly spaced (its points need not be fine points): trilinear
    # interpolation with aligned corners then puts every coarse value back exactly where it was measured.
    size = resolution // 2 + 1
    coarse_where = None
    if where is not None:
        coarse_where = F.interpolate(where[None, None].float(), size=(size,) * 3, mode="trilinear", align_corners=True)
        coarse_where = coarse_where[0, 0] > 0
    coarse = _query(density, grid_points(size, device), coarse_where, chunk_points)
    side = (coarse >= level).float()[None, None]
    mixed = (F.max_pool3d(side, 3, 1, 1) != -F.max_pool3d(-side, 3, 1, 1)).float()  # within a cell of a crossing
    fine = F.interpolate(coarse[None, None], size=(resolution,) * 3, mode="trilinear", align_corners=True)[0, 0]
    refine = F.interpolate(mixed, size=(resolution,) * 3, mode="trilinear", align_corners=True)[0, 0] > 0
    if where is not None:
        refine &= where
        fine = torch.where(where, fine, torch.zeros_like(fine))
    index = torch.nonzero(refine.reshape(-1)).squeeze(1)
    flat = fine.reshape(-1)
    flat[index] = _query(density, points.reshape(-1, 3)[index], None, chunk_points)
    return flat.reshape(resolution, resolution, resolution)


def _query(density: DensityFn, points: Tensor, where: Tensor | None, chunk_points: int) -> Tensor:
    """density at points (..., 3) -> (...), queried `chunk_points` at a time; 0 where `where` is False."""
    shape = points.shape[:-1]
    flat = points.reshape(-1, 3)
    index = torch.arange(flat.shape[0], device=flat.device) if where is None else torch.nonzero(where.reshape(-1))[:, 0]
    values = torch.zeros(flat.shape[0], device=flat.device)
    for i in range(0, index.numel(), chunk_points):
        chunk = index[i : i + chunk_points]
        values[chunk] = density(flat[chunk]).reshape(-1).to(values.dtype)
    return values.reshape(shape)


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
    return level_set_mesh(sdf, backend)


def level_set_mesh(sdf: Tensor, backend: McBackend = "auto") -> Mesh:
    """sdf (R, R, R) on the grid of `grid_points`, inside negative -> world-frame mesh of its zero level set
    (empty when the field does not cross zero); diso's CUDA marching cubes when available, else PyTorch's."""
    use_diso = backend == "diso" or (backend == "auto" and sdf.is_cuda and diso_available())
    if backend == "diso" and not (sdf.is_cuda and diso_available()):
        raise GTRError("the diso marching cubes needs the optional `diso` package and a CUDA GPU")
    if not float(sdf.detach().min()) < 0 <= float(sdf.detach().max()):
        return Mesh(sdf.new_zeros((0, 3)), torch.zeros((0, 3), dtype=torch.long, device=sdf.device))
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
    """Mesh of the level set density = `level` of a density field (differentiable in the densities queried
    near the surface, if grad is enabled)."""
    sdf = -(density_grid(density, resolution, device, chunk_points, level=level) - level)
    return sdf_to_mesh(sdf, backend)
