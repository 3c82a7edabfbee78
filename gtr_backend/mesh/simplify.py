"""Mesh simplification to a target face count with `fast-simplification` (quadric edge collapse)."""

from __future__ import annotations

import numpy as np
import torch

from .mesh import Mesh


def simplify(mesh: Mesh, target_faces: int) -> Mesh:
    """A mesh with about `target_faces` faces (unchanged if it has fewer); drops UVs and colours."""
    if target_faces <= 0 or mesh.num_faces <= target_faces:
        return mesh
    import fast_simplification

    points = mesh.vertices.detach().cpu().numpy().astype(np.float32)
    faces = mesh.faces.cpu().numpy().astype(np.int64)
    reduction = 1.0 - target_faces / mesh.num_faces
    new_points, new_faces = fast_simplification.simplify(points, faces, target_reduction=reduction)
    device = mesh.vertices.device
    return Mesh(
        torch.from_numpy(np.asarray(new_points, dtype=np.float32)).to(device),
        torch.from_numpy(np.asarray(new_faces, dtype=np.int64)).to(device),
    )
