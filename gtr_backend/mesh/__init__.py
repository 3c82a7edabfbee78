"""Meshes: the `Mesh` type, density-grid extraction with marching cubes, simplification."""

from .extract import DENSITY_LEVEL, MeshError, density_grid, extract_mesh, grid_points, sdf_to_mesh
from .marching_cubes import marching_cubes
from .mesh import Mesh
from .simplify import simplify

__all__ = [
    "DENSITY_LEVEL",
    "Mesh",
    "MeshError",
    "density_grid",
    "extract_mesh",
    "grid_points",
    "marching_cubes",
    "sdf_to_mesh",
    "simplify",
]
