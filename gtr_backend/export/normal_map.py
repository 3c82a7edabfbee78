"""A tangent-space normal map: the detail of the full-resolution surface, on the simplified mesh.

The surface the marching cubes ran on is kept as its grid (`inside`: (R, R, R), positive inside, on
`mesh.extract.grid_points`); its outward normal at a point is minus the gradient of the trilinearly
interpolated grid there. `bake_normal_map` rasterizes the simplified mesh's UV layout, takes each texel's
surface point and the grid's normal there, and writes that normal in the texel's tangent frame (T along +u,
B along +v, N the mesh's interpolated smooth normal; glTF's convention: +Y is +v, colour = 0.5 * n + 0.5).
A renderer that shades with the map (glTF `normalTexture`; Blender's Normal Map node) then sees the full
surface's shading on a 20k-face mesh. `normal_map_normals` reads a map back into world normals (the tests
use it to compare with the full surface).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..mesh.mesh import Mesh
from ..render.raster import Fragments, Rasterizer, TorchRasterizer, uv_clip
from .bake import pull_push, smooth_normals

FLAT = (0.5, 0.5, 1.0)  # the colour of an unperturbed normal


def grid_normals(inside: Tensor, points: Tensor) -> Tensor:
    """(P, 3) outward unit normals at world points (P, 3) of the surface of a grid `inside` (R, R, R),
    positive inside, on `grid_points` ([i, j, k] <-> (x, y, z) in [-1, 1]): minus its central-difference
    gradient, one voxel wide, of the trilinear interpolation."""
    resolution = inside.shape[0]
    voxel = 2.0 / (resolution - 1)
    volume = inside.permute(2, 1, 0)[None, None].float()  # grid_sample reads (D, H, W) = (z, y, x)
    offsets = torch.eye(3, device=points.device) * voxel
    samples = torch.cat([points[None] + offsets[:, None], points[None] - offsets[:, None]])  # (6, P, 3)
    values = F.grid_sample(volume, samples.reshape(1, 1, 1, -1, 3).float(), align_corners=True)
    values = values.reshape(6, -1)
    gradient = (values[:3] - values[3:]).T / (2 * voxel)
    return F.normalize(-gradient, dim=-1)


def tangent_frames(mesh: Mesh) -> tuple[Tensor, Tensor]:
    """Per-vertex tangents (V, 3) along +u and handedness (V,) (+1 or -1: B = handedness * N x T), from the
    UV layout (each face's dP/du, area-weighted, orthogonalised against the smooth normal)."""
    assert mesh.uv is not None
    p = mesh.vertices.detach().float()[mesh.faces]  # (F, 3, 3)
    t = mesh.uv.float()[mesh.faces]  # (F, 3, 2)
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    d1, d2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    sign = torch.where(det < 0, -1.0, 1.0)
    along_u = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * sign[:, None]  # dP/du times |det|: area-weighted
    along_v = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * sign[:, None]
    tangent = torch.zeros_like(mesh.vertices, dtype=torch.float32)
    bitangent = torch.zeros_like(tangent)
    for corner in range(3):
        tangent.index_add_(0, mesh.faces[:, corner], along_u)
        bitangent.index_add_(0, mesh.faces[:, corner], along_v)
    normal = smooth_normals(mesh).float()
    tangent = F.normalize(tangent - (tangent * normal).sum(-1, keepdim=True) * normal, dim=-1)
    handedness = torch.where((torch.linalg.cross(normal, tangent) * bitangent).sum(-1) < 0, -1.0, 1.0)
    return tangent, handedness


def _texel_frames(mesh: Mesh, fragments: Fragments, rasterizer: Rasterizer) -> tuple[Tensor, Tensor, Tensor]:
    """(T, B, N) per covered texel, each (P, 3), orthonormal: the interpolated tangent frame."""
    tangent, handedness = tangent_frames(mesh)
    normal = smooth_normals(mesh).float()
    covered = fragments.mask[0]
    n = F.normalize(rasterizer.interpolate(normal, fragments, mesh.faces)[0][covered], dim=-1)
    t = rasterizer.interpolate(tangent, fragments, mesh.faces)[0][covered]
    t = F.normalize(t - (t * n).sum(-1, keepdim=True) * n, dim=-1)
    w = rasterizer.interpolate(handedness[:, None], fragments, mesh.faces)[0][covered]
    b = torch.linalg.cross(n, t) * torch.where(w < 0, -1.0, 1.0)
    return t, b, n


def bake_normal_map(mesh: Mesh, inside: Tensor, size: int = 1024, rasterizer: Rasterizer | None = None) -> Tensor:
    """(S, S, 3) in [0, 1]: the normals of the surface of `inside` in each texel's tangent frame (module
    docstring); texels no face covers take their neighbours' values."""
    assert mesh.uv is not None, "bake_normal_map needs a mesh with uv (see unwrap)"
    rasterizer = rasterizer or TorchRasterizer()
    fragments = rasterizer.rasterize(uv_clip(mesh.uv.float()), mesh.faces, size, size)
    covered = fragments.mask[0]
    image = torch.tensor(FLAT).expand(size, size, 3).clone()
    if not bool(covered.any()):
        return image
    points = rasterizer.interpolate(mesh.vertices.detach().float(), fragments, mesh.faces)[0][covered]
    detail = grid_normals(inside.to(points.device), points)
    t, b, n = _texel_frames(mesh, fragments, rasterizer)
    local = torch.stack([(detail * t).sum(-1), (detail * b).sum(-1), (detail * n).sum(-1)], dim=-1)
    local = torch.where(local[:, 2:] > 0.05, local, n.new_tensor([0.0, 0.0, 1.0]))  # facing away: keep flat
    image[covered] = (F.normalize(local, dim=-1) * 0.5 + 0.5).cpu()
    return pull_push(image, covered.cpu()).clamp(0, 1)


def normal_map_normals(mesh: Mesh, normal_map: Tensor, fragments: Fragments, rasterizer: Rasterizer) -> Tensor:
    """World normals (P, 3) that a renderer shading with `normal_map` sees at the covered pixels of
    `fragments` (a rasterization of `mesh`, any camera), sampled at the texel of each pixel's UV."""
    assert mesh.uv is not None
    t, b, n = _texel_frames(mesh, fragments, rasterizer)
    uv = rasterizer.interpolate(mesh.uv.float(), fragments, mesh.faces)[0][fragments.mask[0]]
    grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], dim=-1)[None, None]  # row 0 is v = 1
    local = F.grid_sample(normal_map.permute(2, 0, 1)[None].float(), grid, align_corners=False)[0, :, 0].T
    local = local * 2 - 1
    return F.normalize(local[:, :1] * t + local[:, 1:2] * b + local[:, 2:] * n, dim=-1)
