"""Mesh simplification to a target face count (quadric edge collapse).

Two implementations of the same method, picked by what is installed: meshoptimizer's simplifier when its
Python binding is (`pip install "gtr-blender[fast]"`; about twice as fast: 232k -> 20k faces in 0.10 s
against 0.21 s on 2 CPU cores, with the same Chamfer distance to the full mesh, docs/results/notes-5), else
`fast-simplification` (a requirement, so simplification always works).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Literal

import numpy as np
import torch

from .mesh import Mesh

SimplifyBackend = Literal["auto", "meshoptimizer", "fast-simplification"]


@functools.cache
def simplifier() -> str:
    """The implementation "auto" uses here: meshoptimizer if it imports (its native library loads)."""
    if importlib.util.find_spec("meshoptimizer") is None:
        return "fast-simplification"
    try:
        import meshoptimizer  # noqa: F401
    except (ImportError, OSError):
        return "fast-simplification"
    return "meshoptimizer"


def simplify(mesh: Mesh, target_faces: int, backend: SimplifyBackend = "auto") -> Mesh:
    """A mesh with about `target_faces` faces (unchanged if it has fewer); drops UVs and colours."""
    if target_faces <= 0 or mesh.num_faces <= target_faces:
        return mesh
    points = mesh.vertices.detach().cpu().numpy().astype(np.float32)
    faces = mesh.faces.cpu().numpy().astype(np.int64)
    chosen = simplifier() if backend == "auto" else backend
    if chosen == "meshoptimizer":
        new_points, new_faces = _meshoptimizer(points, faces, target_faces)
    else:
        import fast_simplification

        reduction = 1.0 - target_faces / mesh.num_faces
        new_points, new_faces = fast_simplification.simplify(points, faces, target_reduction=reduction)
    device = mesh.vertices.device
    return Mesh(
        torch.from_numpy(np.asarray(new_points, dtype=np.float32)).to(device),
        torch.from_numpy(np.asarray(new_faces, dtype=np.int64)).to(device),
    )


def _meshoptimizer(points: np.ndarray, faces: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """meshoptimizer's simplifier (no error limit: the face count decides), vertices it leaves unused dropped."""
    import meshoptimizer

    indices = np.ascontiguousarray(faces.astype(np.uint32).ravel())
    kept = np.zeros_like(indices)
    vertices = np.ascontiguousarray(points)
    count = meshoptimizer.simplify(kept, indices, vertices, target_index_count=3 * target_faces, target_error=1.0)
    used, new_faces = np.unique(kept[:count], return_inverse=True)
    return points[used], new_faces.reshape(-1, 3).astype(np.int64)
