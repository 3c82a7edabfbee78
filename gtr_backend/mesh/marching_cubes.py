"""Differentiable marching cubes in plain PyTorch (CPU and CUDA).

sdf (X, Y, Z) sampled on grid points (i, j, k), inside negative -> vertices (V, 3) in grid-index
coordinates (x along i, y along j, z along k) and faces (F, 3) whose normals point outwards (towards
positive sdf). Vertices are shared between neighbouring cells, so a closed surface gives a watertight mesh.
The grid is padded by one cell of "outside" before extraction (as diso's DiffMC does), so surfaces that
touch the grid's border are closed too; such vertices can lie up to one cell outside [0, X-1].

Differentiable: a vertex on the edge from grid point a to b sits at a + t (b - a), t = (level - s_a) / (s_b - s_a),
so gradients of anything computed from the vertices flow back to the sdf values.

The triangle table is generated here rather than typed in: for each of the 256 inside/outside corner
patterns, every cube face contributes contour segments (on a face with two diagonal inside corners, each inside
corner is cut off on its own; the rule depends on the face alone, so neighbouring cells agree and no cracks
appear). Segments are directed with the outside corners on their left as seen from outside the cube, chained
into closed loops, and each loop is fan-triangulated; that orientation makes normals point outwards.
"""

from __future__ import annotations

import functools
import itertools

import torch
import torch.nn.functional as F
from torch import Tensor

# Corner c of a cell sits at offset (c & 1, c >> 1 & 1, c >> 2 & 1) from the cell's first grid point.
CORNERS = [(c & 1, c >> 1 & 1, c >> 2 & 1) for c in range(8)]
# Edge e joins corner a (the lower one) to a + axis; listed as (a, axis).
EDGES = [(a, axis) for axis in range(3) for a in range(8) if not a >> axis & 1]
_EDGE_INDEX = {(a, a | 1 << axis): e for e, (a, axis) in enumerate(EDGES)}


def _edge(a: int, b: int) -> int:
    return _EDGE_INDEX[(min(a, b), max(a, b))]


def _faces() -> list[tuple[tuple[int, ...], tuple[float, float, float]]]:
    """The 6 cube faces: corners in cyclic order, and the outward normal."""
    faces = []
    for axis, side in itertools.product(range(3), (0, 1)):
        u, v = (axis + 1) % 3, (axis + 2) % 3
        cycle = [(0, 0), (1, 0), (1, 1), (0, 1)]
        corners = tuple(side << axis | cu << u | cv << v for cu, cv in cycle)
        normal = [0.0, 0.0, 0.0]
        normal[axis] = 1.0 if side else -1.0
        faces.append((corners, (normal[0], normal[1], normal[2])))
    return faces


def _midpoint(edge: int) -> tuple[float, float, float]:
    a, axis = EDGES[edge]
    p = [float(x) for x in CORNERS[a]]
    p[axis] += 0.5
    return (p[0], p[1], p[2])


def _case_triangles(case: int) -> list[tuple[int, int, int]]:
    """Triangles (as edge triples) of one corner pattern; bit c of `case` set = corner c inside."""
    inside = [bool(case >> c & 1) for c in range(8)]
    successor: dict[int, int] = {}
    for corners, normal in _faces():
        cut = [i for i in range(4) if inside[corners[i]] != inside[corners[(i + 1) % 4]]]
        if not cut:
            continue
        if len(cut) == 2:
            pairs = [((cut[0], cut[1]), next(c for c in corners if inside[c]))]
        else:  # two diagonal inside corners: cut each off on its own
            pairs = [(((i - 1) % 4, i), corners[i]) for i in range(4) if inside[corners[i]]]
        for (i, j), inner in pairs:
            a = _edge(corners[i], corners[(i + 1) % 4])
            b = _edge(corners[j], corners[(j + 1) % 4])
            pa, pb, pc = _midpoint(a), _midpoint(b), CORNERS[inner]
            ab = [pb[k] - pa[k] for k in range(3)]
            ac = [pc[k] - pa[k] for k in range(3)]
            cross = (ab[1] * ac[2] - ab[2] * ac[1], ab[2] * ac[0] - ab[0] * ac[2], ab[0] * ac[1] - ab[1] * ac[0])
            inside_on_left = sum(cross[k] * normal[k] for k in range(3)) > 0
            start, end = (b, a) if inside_on_left else (a, b)  # outside on the left
            assert start not in successor, "inconsistent contour orientation"
            successor[start] = end
    triangles = []
    while successor:
        loop = [next(iter(successor))]
        while successor[loop[-1]] != loop[0]:
            loop.append(successor.pop(loop[-1]))
        successor.pop(loop[-1])
        triangles += [(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)]
    return triangles


@functools.cache
def _tables() -> tuple[Tensor, Tensor, Tensor]:
    """(256, T, 3) edge triples padded with -1, per-edge corner offsets (12, 3), per-edge axes (12,)."""
    cases = [_case_triangles(case) for case in range(256)]
    most = max(len(t) for t in cases)
    table = torch.full((256, most, 3), -1, dtype=torch.long)
    for case, triangles in enumerate(cases):
        if triangles:
            table[case, : len(triangles)] = torch.tensor(triangles)
    offsets = torch.tensor([CORNERS[a] for a, _ in EDGES], dtype=torch.long)
    axes = torch.tensor([axis for _, axis in EDGES], dtype=torch.long)
    return table, offsets, axes


def marching_cubes(sdf: Tensor, level: float = 0.0) -> tuple[Tensor, Tensor]:
    """sdf (X, Y, Z), inside < level -> vertices (V, 3) in grid-index units, faces (F, 3) long.

    Returns empty tensors when the level set does not cross the grid.
    """
    device = sdf.device
    padded = F.pad(sdf[None, None], (1, 1, 1, 1, 1, 1), value=level + 1.0)[0, 0]
    inside = padded < level
    nx, ny, nz = padded.shape
    case = torch.zeros((nx - 1, ny - 1, nz - 1), dtype=torch.long, device=device)
    for c, (dx, dy, dz) in enumerate(CORNERS):
        case |= inside[dx : nx - 1 + dx, dy : ny - 1 + dy, dz : nz - 1 + dz].long() << c
    cells = torch.nonzero((case > 0) & (case < 255))  # (M, 3)
    corners = cells[:, None, :] + torch.tensor(CORNERS, device=device)  # (M, 8, 3)
    values = padded[corners[..., 0], corners[..., 1], corners[..., 2]]  # (M, 8), differentiable
    vertices, faces = marching_cubes_cells(cells, values, (nx, ny, nz), level)
    return vertices - 1.0, faces  # undo the padding


def marching_cubes_cells(
    cells: Tensor, values: Tensor, grid: tuple[int, int, int], level: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Marching cubes over chosen cells of a grid of `grid` points (a sparse band near a surface, say):
    cells (M, 3) long, each cell's first grid point; values (M, 8) the field at its corners in `CORNERS`
    order, inside < level -> vertices (V, 3) in grid-index units, faces (F, 3) long, outward normals.

    Vertices are identified by the grid edge they lie on, so cells that share an edge share its vertex (a
    closed surface inside the chosen cells gives a watertight mesh). Differentiable in `values`."""
    device = values.device
    table, offsets, axes = (t.to(device) for t in _tables())
    inside = values < level
    case = (inside.long() << torch.arange(8, device=device)).sum(dim=1)  # (M,)
    triangles = table[case]  # (M, T, 3) local edges
    keep = triangles[..., 0] >= 0
    cell_of = torch.arange(len(cells), device=device)[:, None].expand(-1, triangles.shape[1])[keep]  # (F,)
    local = triangles[keep]  # (F, 3)
    if local.shape[0] == 0:
        return values.new_zeros((0, 3)), torch.zeros((0, 3), dtype=torch.long, device=device)
    _, ny, nz = grid
    # A global id per grid edge: 3 * (flat index of its lower grid point) + axis.
    points = cells[cell_of][:, None, :] + offsets[local]  # (F, 3 corners, 3)
    global_edge = ((points[..., 0] * ny + points[..., 1]) * nz + points[..., 2]) * 3 + axes[local]
    unique, faces = torch.unique(global_edge.reshape(-1), return_inverse=True)
    # One occurrence of each edge (any: cells sharing it read the same corner values there).
    occurrence = torch.zeros(len(unique), dtype=torch.long, device=device)
    occurrence.scatter_(0, faces, torch.arange(faces.numel(), device=device))
    edge = local.reshape(-1)[occurrence]
    cell = cell_of[occurrence // 3]
    ends = _edge_corners().to(device)[edge]  # (V, 2) corner indices of each edge
    s0 = values[cell, ends[:, 0]]
    s1 = values[cell, ends[:, 1]]
    t = (level - s0) / (s1 - s0)
    start = (cells[cell] + offsets[edge]).to(values.dtype)
    step = F.one_hot(axes[edge], 3).to(values.dtype)
    return start + t[:, None] * step, faces.reshape(-1, 3)


@functools.cache
def _edge_corners() -> Tensor:
    """(12, 2): the corners (in `CORNERS` order) at the two ends of each edge, lower first."""
    return torch.tensor([(a, a | 1 << axis) for a, axis in EDGES], dtype=torch.long)
