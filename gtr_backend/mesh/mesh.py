"""`Mesh`: a triangle mesh in the world frame (Y up, object in [-1, 1]^3), optionally UV-textured.

vertices (V, 3) float, faces (F, 3) long with counter-clockwise (outward-facing) winding;
optional uv (V, 2) in [0, 1] with v up (OBJ convention; the GLB writer flips it), texture (H, W, 3) in [0, 1],
vertex_colors (V, 3) in [0, 1], and normal_texture (H, W, 3), a tangent-space normal map on the same uv;
material_texture (H, W, 3) the PBR material packed as glTF's metallicRoughnessTexture reads it (R unused, 1;
G roughness; B metallic) and emission_texture (H, W, 3) the emitted colour (display values), on the same uv.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Mesh:
    vertices: Tensor
    faces: Tensor
    uv: Tensor | None = None
    texture: Tensor | None = None
    vertex_colors: Tensor | None = None
    normal_texture: Tensor | None = None  # (H, W, 3) in [0, 1]: tangent-space normals (export.normal_map)
    material_texture: Tensor | None = None  # (H, W, 3) in [0, 1]: 1, roughness, metallic
    emission_texture: Tensor | None = None  # (H, W, 3) in [0, 1]

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def face_normals(self) -> Tensor:
        """(F, 3) unnormalised: their length is twice the triangle's area."""
        a, b, c = (self.vertices[self.faces[:, i]] for i in range(3))
        return torch.linalg.cross(b - a, c - a)

    def area(self) -> float:
        return float(self.face_normals().norm(dim=-1).sum() / 2)

    def volume(self) -> float:
        """Signed volume (positive for a closed mesh with outward normals)."""
        a, b, c = (self.vertices[self.faces[:, i]].double() for i in range(3))
        return float((a * torch.linalg.cross(b, c)).sum() / 6)

    def vertex_normals(self) -> Tensor:
        """(V, 3) unit normals: area-weighted average of the adjacent faces' normals."""
        normals = torch.zeros_like(self.vertices)
        face_normals = self.face_normals()
        for i in range(3):
            normals.index_add_(0, self.faces[:, i], face_normals)
        return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def to(self, device: torch.device | str) -> Mesh:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return Mesh(
            self.vertices.to(device),
            self.faces.to(device),
            move(self.uv),
            move(self.texture),
            move(self.vertex_colors),
            move(self.normal_texture),
            move(self.material_texture),
            move(self.emission_texture),
        )
