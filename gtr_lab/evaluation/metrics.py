"""Image and shape metrics of the evaluation protocol (docs/method.md, section 7).

Images are (N, 3, H, W) in [0, 1], compared over a white background. Shapes are point sets or meshes in the
same frame (align them first, see `evaluation.align`).

- `psnr`, `ssim` and `mask_iou` live in `gtr_backend.metrics` (one of each for every stage, the fidelity score
  and the lab).
- `chamfer_distance`: mean nearest-neighbour distance from A to B plus from B to A (the L2 distances, each
  direction averaged), on points sampled from the surfaces; the protocol reports it x100.
- `volume_iou`: intersection over union of two closed meshes' insides, estimated on a regular grid of points.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gtr_backend.mesh.mesh import Mesh


def sample_surface(mesh: Mesh, count: int = 16000, seed: int = 0) -> Tensor:
    """(count, 3) points uniformly distributed over the mesh's area (seeded)."""
    return sample_surface_faces(mesh, count, seed)[0]


def sample_surface_faces(mesh: Mesh, count: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(count, 3) area-uniform surface points and the (count,) triangle each lies on (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    vertices = mesh.vertices.detach().cpu().double()
    a, b, c = (vertices[mesh.faces.cpu()[:, i]] for i in range(3))
    areas = torch.linalg.cross(b - a, c - a).norm(dim=-1) / 2
    faces = torch.multinomial(areas, count, replacement=True, generator=generator)
    u, v = (
        torch.rand(count, generator=generator, dtype=torch.float64),
        torch.rand(count, generator=generator, dtype=torch.float64),
    )
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    points = a[faces] + u[:, None] * (b[faces] - a[faces]) + v[:, None] * (c[faces] - a[faces])
    return points.float(), faces


def nearest_distances(source: Tensor, target: Tensor, chunk: int = 4096) -> Tensor:
    """(P, 3), (Q, 3) -> (P,) distance from each source point to its nearest target point."""
    exact = "donot_use_mm_for_euclid_dist"  # the matrix-product shortcut loses ~1e-4 to cancellation
    parts = [
        torch.cdist(source[i : i + chunk], target, compute_mode=exact).min(dim=1).values
        for i in range(0, len(source), chunk)
    ]
    return torch.cat(parts)


def chamfer_distance(a: Tensor, b: Tensor) -> float:
    """Symmetric Chamfer distance between point sets (P, 3) and (Q, 3): mean(d(a, B)) + mean(d(b, A))."""
    return float(nearest_distances(a, b).mean() + nearest_distances(b, a).mean())


def inside_grid(mesh: Mesh, resolution: int = 64, bound: float = 1.0) -> Tensor:
    """(R, R, R) bool, [i, j, k] <-> cell centre (x_i, y_j, z_k) over [-bound, bound]^3: inside a closed mesh.

    Parity test along +z: every triangle is intersected with the vertical lines through the cell centres it
    covers in x-y, and a point is inside when an odd number of those crossings lie above it.
    """
    axis = (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution * 2 * bound - bound
    vertices = mesh.vertices.detach().cpu().double()
    tri = vertices[mesh.faces.cpu()]  # (F, 3 corners, 3)
    step = 2 * bound / resolution
    i0 = torch.ceil((tri[..., 0].min(1).values + bound) / step - 0.5).clamp(0, resolution).long()
    i1 = torch.floor((tri[..., 0].max(1).values + bound) / step - 0.5).clamp(-1, resolution - 1).long()
    j0 = torch.ceil((tri[..., 1].min(1).values + bound) / step - 0.5).clamp(0, resolution).long()
    j1 = torch.floor((tri[..., 1].max(1).values + bound) / step - 0.5).clamp(-1, resolution - 1).long()
    nx, ny = (i1 - i0 + 1).clamp_min(0), (j1 - j0 + 1).clamp_min(0)
    count = nx * ny
    face = torch.repeat_interleave(torch.arange(len(tri)), count)
    offset = torch.arange(len(face)) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    i = i0[face] + offset % nx[face].clamp_min(1)
    j = j0[face] + offset // nx[face].clamp_min(1)
    # Shift the lines off the grid by a tiny amount, so no line passes exactly through a shared triangle edge.
    x, y = axis[i] + 1.37e-7, axis[j] + 2.91e-7
    a, b, c = tri[face, 0], tri[face, 1], tri[face, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    safe = torch.where(det.abs() < 1e-15, torch.ones_like(det), det)
    u = ((x - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (y - a[:, 1])) / safe
    v = ((b[:, 0] - a[:, 0]) * (y - a[:, 1]) - (x - a[:, 0]) * (b[:, 1] - a[:, 1])) / safe
    hit = (det.abs() >= 1e-15) & (u >= 0) & (v >= 0) & (u + v <= 1)
    z = a[:, 2] + u * (b[:, 2] - a[:, 2]) + v * (c[:, 2] - a[:, 2])
    i, j, z = i[hit], j[hit], z[hit]
    below = torch.searchsorted(axis, z)  # grid points k < below lie under this crossing
    diff = torch.zeros((resolution, resolution, resolution + 1), dtype=torch.long)
    diff.index_put_((i, j, torch.zeros_like(i)), torch.ones_like(i), accumulate=True)
    diff.index_put_((i, j, below), -torch.ones_like(i), accumulate=True)
    crossings_above = torch.cumsum(diff, dim=2)[..., :resolution]
    return crossings_above % 2 == 1


def volume_iou(a: Mesh, b: Mesh, resolution: int = 64, bound: float = 1.0) -> float:
    """IoU of the insides of two closed meshes, on a resolution^3 grid over [-bound, bound]^3."""
    in_a, in_b = inside_grid(a, resolution, bound), inside_grid(b, resolution, bound)
    union = int((in_a | in_b).sum())
    return float((in_a & in_b).sum()) / union if union else math.nan


def planar_faces(mesh: Mesh, min_share: float = 0.04, angle_deg: float = 2.0, offset: float = 0.01) -> list[Tensor]:
    """The large flat faces of a mesh: lists of triangle indices (one tensor per face) whose triangles share a
    plane (normals within `angle_deg`, offsets within `offset` world units) and that together cover at least
    `min_share` of the mesh's area. A box gives its six sides; a sphere or a cylinder's side gives none."""
    vertices = mesh.vertices.detach().cpu().double()
    normals = torch.nn.functional.normalize(mesh.face_normals().detach().cpu().double(), dim=-1)
    corners = vertices[mesh.faces.cpu()]
    areas = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]).norm(dim=-1) / 2
    offsets = (normals * corners.mean(1)).sum(-1)
    unassigned = torch.ones(len(normals), dtype=torch.bool)
    cos = math.cos(math.radians(angle_deg))
    faces = []
    for seed in torch.argsort(areas, descending=True).tolist():
        if not unassigned[seed]:
            continue
        same = unassigned & ((normals @ normals[seed]) >= cos) & ((offsets - offsets[seed]).abs() <= offset)
        unassigned &= ~same
        if float(areas[same].sum()) >= min_share * float(areas.sum()):
            faces.append(torch.nonzero(same).squeeze(1))
    return faces


def flatness(predicted: Mesh, truth: Mesh, count: int = 16000, edge_margin: float = 0.05) -> float | None:
    """How flat the prediction keeps the truth's flat faces, as a percentage of the truth's size (its bounding
    box's diagonal): for each large flat face of the truth (`planar_faces`), the predicted surface points whose
    nearest truth point lies on that face, at least `edge_margin` (share of the diagonal) away from any other
    part of the truth (so rounded edges are not counted here), get their best plane (least squares); the RMS
    distance of the points to it, averaged over the faces (weighted by point count). None when the truth has
    no large flat face. Both meshes in the same frame (align first)."""
    planes = planar_faces(truth)
    if not planes:
        return None
    truth_points, truth_faces = sample_surface_faces(truth, count, seed=3)
    label = torch.full((truth.num_faces,), -1, dtype=torch.long)
    for index, members in enumerate(planes):
        label[members] = index
    point_label = label[truth_faces]
    diagonal = float((truth.vertices.max(0).values - truth.vertices.min(0).values).norm())
    # A truth point is away from the face's edges when no point of another label lies within the margin.
    inner = torch.ones(len(truth_points), dtype=torch.bool)
    margin = edge_margin * diagonal
    for start in range(0, len(truth_points), 4096):
        block = torch.cdist(truth_points[start : start + 4096], truth_points)
        other = point_label[start : start + 4096, None] != point_label[None]
        inner[start : start + 4096] = ~((block < margin) & other).any(1)
    points = sample_surface(predicted, count, seed=4)
    nearest = torch.cat(
        [torch.cdist(points[i : i + 4096], truth_points).argmin(1) for i in range(0, len(points), 4096)]
    )
    total, weight = 0.0, 0
    for index in range(len(planes)):
        chosen = points[(point_label[nearest] == index) & inner[nearest]].double()
        if len(chosen) < 16:
            continue
        centred = chosen - chosen.mean(0)
        normal = torch.linalg.svd(centred, full_matrices=False).Vh[-1]
        total += float((centred @ normal).square().sum())
        weight += len(chosen)
    return 100 * math.sqrt(total / weight) / diagonal if weight else None
