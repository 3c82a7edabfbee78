"""A fast UV atlas: charts from the mesh's own geometry, flattened by projection, shelf-packed.

`fast_unwrap(mesh, texture_size, padding)` -> the same surface with per-vertex `uv` (V', 2) in [0, 1], vertices
split along chart borders, in three steps, all vectorised (numpy) except the packer's loop over charts:

1. **Charts.** Every face takes the axis direction (+-X, +-Y, +-Z) closest to its smoothed normal (the normal
   averaged over its corners' neighbourhoods, so a marching-cubes surface does not fray into slivers where
   it turns); faces whose own normal is too far from that axis for a clean projection take their own
   closest axis. A chart is a connected set of faces (sharing edges) with one axis.
2. **Flattening.** A chart is projected on the plane of its axis (orientation kept, so no chart is
   mirrored); every face's projection then has positive area. Where a chart still folds over itself (its
   faces overlap in the projection: a pleat the surface fit left, a spiral), the overlapping faces become
   charts of their own: the overlap guard rasterizes all charts at the atlas's texel size and counts how
   many faces own each texel. The faces it takes out go into the rows the packer left free (`RESERVE`), at
   the same scale if they fit, else smaller (down to half of it), so the rest of the checked layout stays as
   it is; only if they do not fit there is everything packed again and checked again (after
   `GUARD_PASSES`, every face of a chart that still folds is a chart).
3. **Packing.** Charts are turned to their principal axes and to landscape, sorted by height and placed on
   shelves; the common scale (texels per unit of surface) is the largest whose shelves fit the square
   atlas, found by bisection. Every chart keeps `padding` empty texels on each side, so bilinear filtering
   and the first mip levels never read a neighbour's colour.

Texel density is uniform up to the projection's foreshortening: a face tilted by `a` from its chart's axis
gets cos(a) of the density (at least 1/sqrt(3) by construction; `atlas_stats` measures it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from ..components import connected_components as _components
from ..errors import GTRError
from ..mesh.mesh import Mesh

# The two in-plane axes of each projection direction, ordered so that u x v points along the direction:
# charts are never mirrored. Index: 2 * axis + (0 for +, 1 for -).
_PLANES = np.array([[1, 2], [2, 1], [2, 0], [0, 2], [0, 1], [1, 0]])
SMALL_CHART = 8  # faces: charts smaller than this give their faces to a neighbouring chart where they fit
GUARD_PASSES = 6  # passes of the overlap guard before a chart that still folds is split into its faces
RESERVE = 0.03  # share of the atlas's rows first left free, for the faces the overlap guard takes out of their charts
T = TypeVar("T")
MIN_APART_SCALE = 0.5  # faces placed in the free rows keep at least this share of the atlas's texel density
MIN_COS = 0.1  # a face whose normal is closer than this (cosine) to its chart's plane takes its own axis


@dataclass(frozen=True)
class AtlasStats:
    charts: int
    coverage: float  # fraction of the atlas's texels covered by faces
    density_spread: float  # texel density: 95th over 5th percentile, face by face (1 = uniform)


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return np.cross(b - a, c - a)  # length = twice the area


def _smoothed_normals(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Face normals averaged over their corners' one-rings, `rounds` times (area-weighted)."""
    smooth = normals
    for _ in range(rounds):
        at_vertex = np.zeros_like(vertices)
        for corner in range(3):
            np.add.at(at_vertex, faces[:, corner], smooth)
        smooth = at_vertex[faces].sum(axis=1)
    return smooth


def _face_pairs(faces: np.ndarray) -> np.ndarray:
    """(P, 2) pairs of faces that share an edge (a non-manifold edge links its faces in a chain)."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    owner = np.repeat(np.arange(len(faces)), 3)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, owner = edges[order], owner[order]
    same = (edges[1:] == edges[:-1]).all(axis=1)
    return np.stack([owner[:-1][same], owner[1:][same]], axis=1)


def _charts(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chart of each face (F,), projection direction of each chart (K,) in 0..5)."""
    normals = _face_normals(vertices, faces)
    smooth = _smoothed_normals(vertices, faces, normals)
    directions = np.concatenate([np.eye(3), -np.eye(3)])[[0, 3, 1, 4, 2, 5]]  # +X -X +Y -Y +Z -Z
    direction = np.argmax(smooth @ directions.T, axis=1)
    length = np.linalg.norm(normals, axis=1)
    along = np.einsum("fi,fi->f", normals, directions[direction])
    poor = along <= MIN_COS * length  # the smoothed choice would squash or flip this face: use its own
    direction[poor] = np.argmax(normals[poor] @ directions.T, axis=1)
    pairs = _face_pairs(faces)
    fits = normals @ directions.T > MIN_COS * length[:, None]  # (F, 6): directions a face projects cleanly on
    for _ in range(3):  # faces of tiny charts join a neighbouring chart whose direction suits them
        chart = _components(len(faces), pairs[direction[pairs[:, 0]] == direction[pairs[:, 1]]])
        small = np.bincount(chart)[chart] < SMALL_CHART
        votes = np.zeros((len(faces), 6))
        for a, b in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
            big = ~small[b]
            np.add.at(votes, a[big], np.eye(6)[direction[b[big]]])
        votes *= fits
        move = small & (votes.max(axis=1) > 0)
        if not move.any():
            break
        direction[move] = np.argmax(votes[move], axis=1)
    chart = _components(len(faces), pairs[direction[pairs[:, 0]] == direction[pairs[:, 1]]])
    chart_direction = np.zeros(chart.max() + 1, dtype=np.int64)
    chart_direction[chart] = direction
    return chart, chart_direction


def _split_corners(faces: np.ndarray, chart: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices split by chart: (original vertex (V',), chart (V',) of each new vertex, new faces (F, 3))."""
    stride = int(faces.max()) + 1
    keys = np.repeat(chart, 3) * stride + faces.reshape(-1)  # one int64 per (chart, vertex) corner
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique % stride, unique // stride, inverse.reshape(-1, 3)


def _flatten(points: np.ndarray, vertex_chart: np.ndarray, chart_direction: np.ndarray, charts: int) -> np.ndarray:
    """(V', 2) chart coordinates: projection on the chart's plane, turned to the chart's principal axes."""
    plane = _PLANES[chart_direction[vertex_chart]]
    uv = np.take_along_axis(points, plane, axis=1)
    count = np.bincount(vertex_chart, minlength=charts).clip(min=1)[:, None]
    centre = np.zeros((charts, 2))
    np.add.at(centre, vertex_chart, uv)
    uv = uv - (centre / count)[vertex_chart]
    moments = np.zeros((charts, 3))
    np.add.at(moments, vertex_chart, np.stack([uv[:, 0] ** 2, uv[:, 1] ** 2, uv[:, 0] * uv[:, 1]], axis=1))
    angle = 0.5 * np.arctan2(2 * moments[:, 2], moments[:, 0] - moments[:, 1])[vertex_chart]
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([cos * uv[:, 0] + sin * uv[:, 1], -sin * uv[:, 0] + cos * uv[:, 1]], axis=1)


def _shelves(width: np.ndarray, height: np.ndarray, side: float, top: float | None = None) -> np.ndarray | None:
    """Lower-left corners (K, 2) of boxes placed on shelves in a `side` wide, `top` (default `side`) high
    rectangle, tallest first; None if they do not fit."""
    top = side if top is None else top
    order = np.argsort(-height, kind="stable")
    corners = np.zeros((len(width), 2))
    x = y = shelf = 0.0
    for k in order:
        if x + width[k] > side:
            x, y = 0.0, y + shelf
            shelf = 0.0
        if width[k] > side or y + height[k] > top:
            return None
        corners[k] = (x, y)
        x += width[k]
        shelf = max(shelf, height[k])
    return corners


def _landscape(local: np.ndarray, extent: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes turned by a quarter (never mirrored) where they are taller than wide: points (P, 2) in their
    box's corner frame, extents (K, 2), `owner` (P,) the box of each point -> (points, extents) turned."""
    turn = extent[:, 1] > extent[:, 0]
    turned = np.stack([local[:, 1], extent[owner, 0] - local[:, 0]], 1)
    return np.where(turn[owner, None], turned, local), np.where(turn[:, None], extent[:, ::-1], extent)


@dataclass(frozen=True)
class Layout:
    uv: np.ndarray  # (V', 2) in [0, 1]
    scale: float  # texels per unit of surface
    top: float  # texel rows the shelves use, from the bottom: the rows above are free


def _pack(uv: np.ndarray, vertex_chart: np.ndarray, charts: int, size: int, padding: int, reserve: float) -> Layout:
    """Chart coordinates -> atlas uv in [0, 1]: common scale, shelves, `padding` texels around every chart,
    the top `reserve` texel rows left free."""
    low = np.full((charts, 2), np.inf)
    high = np.full((charts, 2), -np.inf)
    np.minimum.at(low, vertex_chart, uv)
    np.maximum.at(high, vertex_chart, uv)
    local, extent = _landscape(uv - low[vertex_chart], np.maximum(high - low, 1e-12), vertex_chart)

    def shelved(scale: float) -> tuple[np.ndarray, float] | None:  # corners and the top row used, if they fit
        boxes = np.ceil(extent * scale) + 2 * padding + 1
        corners = _shelves(boxes[:, 0], boxes[:, 1], size, size - reserve)
        return None if corners is None else (corners, float((corners[:, 1] + boxes[:, 1]).max()))

    best = _largest_fit(shelved, 0.0, (size - 2 * padding) / extent.max(), 24)
    if best is None:
        raise GTRError(
            f"the mesh's {charts} UV charts do not fit a {size} px texture; use a larger texture size or --uv xatlas"
        )
    scale, (corners, top) = best
    texels = corners[vertex_chart] + padding + 0.5 + local * scale
    return Layout((texels / size).astype(np.float32), scale, top)


def _largest_fit(place: Callable[[float], T | None], low: float, high: float, rounds: int) -> tuple[float, T] | None:
    """Bisection for the largest scale (texels per unit) in (low, high) at which `place(scale)` succeeds (is not
    None): that scale and its placement, or None if no scale tried does."""
    best = None
    for _ in range(rounds):
        middle = (low + high) / 2
        placed = place(middle)
        if placed is None:
            high = middle
        else:
            low, best = middle, (middle, placed)
    return best


def _place_apart(
    corners: np.ndarray, direction: np.ndarray, layout: Layout, size: int, padding: int
) -> np.ndarray | None:
    """Single faces given charts of their own in the rows above the layout's shelves: corner points (n, 3, 3)
    and each face's projection direction (n,) -> uv (n, 3, 2), or None if they do not fit there. They keep the
    layout's scale if they fit at it, else the largest scale at which they do, down to `MIN_APART_SCALE` of
    it (a few small faces with fewer texels, rather than the whole atlas packed again)."""
    flat = np.take_along_axis(corners, _PLANES[direction][:, None, :].repeat(3, axis=1), axis=2)  # (n, 3, 2)
    low = flat.min(axis=1)
    owner = np.repeat(np.arange(len(flat)), 3)
    local, extent = _landscape((flat - low[:, None]).reshape(-1, 2), np.maximum(flat.max(axis=1) - low, 1e-12), owner)
    top = math.ceil(layout.top)

    def spots(scale: float) -> np.ndarray | None:
        boxes = np.ceil(extent * scale) + 2 * padding + 1
        return _shelves(boxes[:, 0], boxes[:, 1], size, size - top)

    scale, found = layout.scale, spots(layout.scale)
    if found is None:
        smaller = _largest_fit(spots, MIN_APART_SCALE * layout.scale, layout.scale, 12)
        if smaller is None:  # too many or too large to keep a fair share of texels: pack everything again
            return None
        scale, found = smaller
    texels = found[owner] + [0.0, top] + padding + 0.5 + local * scale
    return (texels / size).astype(np.float32).reshape(-1, 3, 2)


def _overlapping_faces(uv: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """(F,) bool: faces that share a texel centre with another face (strictly inside both)."""
    t = torch.from_numpy(uv[faces].astype(np.float64) * size)  # (F, 3, 2) texel coordinates
    low = torch.floor(t.min(dim=1).values - 0.5).long().clamp(0, size - 1)
    high = torch.ceil(t.max(dim=1).values - 0.5).long().clamp(0, size - 1)
    # Edge functions e(x, y) = a x + b y + c, signed so that the inside of every face is where all three > 0.
    p, q = t, t.roll(-1, dims=1)
    a, b = p[..., 1] - q[..., 1], q[..., 0] - p[..., 0]
    c = -(a * p[..., 0] + b * p[..., 1])
    sign = torch.sign(a[:, 0] * t[:, 2, 0] + b[:, 0] * t[:, 2, 1] + c[:, 0])[:, None]
    a, b, c = (a * sign).float(), (b * sign).float(), (c * sign).float()
    count = torch.zeros(size * size, dtype=torch.int32)
    owners = []
    span = (high - low + 1).clamp(min=1).max(dim=1).values
    smaller = 0
    blocks = [2 << k for k in range(max(1, math.ceil(math.log2(size))))]
    for block in blocks:  # faces grouped by the size of their box of texels (powers of two)
        index = torch.nonzero((span <= block) & (span > smaller)).squeeze(1)
        smaller = block
        cells = torch.stack(torch.meshgrid(torch.arange(block), torch.arange(block), indexing="xy"), -1).reshape(-1, 2)
        step = max(1, (1 << 21) // (block * block))
        for start in range(0, len(index), step):
            ids = index[start : start + step]
            xy = low[ids, None, :] + cells  # (n, block^2, 2) texel indices
            x, y = xy[..., 0].float() + 0.5, xy[..., 1].float() + 0.5
            inside = (xy <= high[ids, None, :]).all(-1)
            for k in range(3):
                inside &= a[ids, k, None] * x + b[ids, k, None] * y + c[ids, k, None] > 1e-4
            flat = (xy[..., 1] * size + xy[..., 0])[inside]
            count.index_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
            owners.append((ids[:, None].expand_as(inside)[inside], flat))
    crowded = count > 1
    overlapping = torch.zeros(len(faces), dtype=torch.bool)
    for ids, flat in owners:
        overlapping[ids[crowded[flat]]] = True
    return overlapping.numpy()


def fast_unwrap(mesh: Mesh, texture_size: int = 1024, padding: int | None = None) -> Mesh:
    """UV-unwrap by projected charts (module docstring): returns a mesh with `uv` (V', 2) in [0, 1], vertices
    split along chart borders. `padding`: empty texels around each chart (default: 1 per 512 px of atlas)."""
    padding = max(1, texture_size // 512) if padding is None else padding
    device = mesh.vertices.device
    if mesh.num_faces == 0:
        return Mesh(mesh.vertices, mesh.faces, uv=torch.zeros((mesh.num_vertices, 2), device=device))
    vertices = mesh.vertices.detach().cpu().double().numpy()
    faces = mesh.faces.cpu().numpy().astype(np.int64)
    chart, chart_direction = _charts(vertices, faces)
    own = _own_direction(vertices, faces)
    reserve = RESERVE * texture_size
    for attempt in range(GUARD_PASSES + 1):  # the overlap guard: until no texel has two owners
        source, vertex_chart, new_faces = _split_corners(faces, chart)
        flat = _flatten(vertices[source], vertex_chart, chart_direction, len(chart_direction))
        layout = _pack(flat, vertex_chart, len(chart_direction), texture_size, padding, reserve)
        folded = _overlapping_faces(layout.uv, new_faces, texture_size)
        if not folded.any():
            return _unwrapped(mesh, source, new_faces, layout.uv)
        # A local fold (a pleat left by the surface fit): its faces become charts of their own (a single face
        # cannot overlap itself), each projected on its own axis: in the free rows if they fit there (the rest
        # of the layout, checked, stays as it is), else packed again with the others.
        apart = _place_apart(vertices[faces[folded]], own[folded], layout, texture_size, padding)
        if apart is not None:
            return _unwrapped(mesh, *_move_apart(source, new_faces, layout.uv, faces, folded, apart))
        if attempt == GUARD_PASSES:
            raise GTRError(f"the UV atlas still overlaps after {GUARD_PASSES} passes; use --uv xatlas")
        if attempt == GUARD_PASSES - 1:  # last resort: every face of a chart that still folds is a chart
            folded = np.isin(chart, chart[folded])
        chart = np.where(folded, chart.max() + 1 + np.arange(len(chart)), chart)
        chart_direction = np.concatenate([chart_direction, own])
        used, chart = np.unique(chart, return_inverse=True)
        chart_direction = chart_direction[used]
    raise AssertionError("unreachable")


def _move_apart(
    source: np.ndarray, faces: np.ndarray, uv: np.ndarray, original: np.ndarray, moved: np.ndarray, apart: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The split mesh (source vertex (V',), faces (F, 3), uv (V', 2)) with the `moved` faces (F,) bool on three
    vertices of their own at `apart` (n, 3, 2); vertices no face uses any more are dropped."""
    first = len(source)
    source = np.concatenate([source, original[moved].reshape(-1)])
    uv = np.concatenate([uv, apart.reshape(-1, 2)])
    faces = faces.copy()
    faces[moved] = first + np.arange(3 * int(moved.sum())).reshape(-1, 3)
    used, faces = np.unique(faces, return_inverse=True)
    return source[used], faces.reshape(-1, 3), uv[used]


def _unwrapped(mesh: Mesh, source: np.ndarray, faces: np.ndarray, uv: np.ndarray) -> Mesh:
    device = mesh.vertices.device
    return Mesh(
        mesh.vertices[torch.from_numpy(source).to(device)],
        torch.from_numpy(faces).to(device),
        uv=torch.from_numpy(uv).to(device),
    )


def _own_direction(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) each face's own closest axis direction (0..5: +X -X +Y -Y +Z -Z)."""
    directions = np.concatenate([np.eye(3), -np.eye(3)])[[0, 3, 1, 4, 2, 5]]
    return np.argmax(_face_normals(vertices, faces) @ directions.T, axis=1)


def atlas_stats(mesh: Mesh, texture_size: int) -> AtlasStats:
    """Charts, coverage and texel-density spread of a mesh's UV layout (for the bench and RESULTS.md)."""
    assert mesh.uv is not None
    uv = mesh.uv.detach().cpu().double().numpy()
    faces = mesh.faces.cpu().numpy()
    vertices = mesh.vertices.detach().cpu().double().numpy()
    uv_area = 0.5 * np.abs(np.cross(uv[faces[:, 1]] - uv[faces[:, 0]], uv[faces[:, 2]] - uv[faces[:, 0]]))
    area = 0.5 * np.linalg.norm(_face_normals(vertices, faces), axis=1)
    keep = area > 1e-12
    density = uv_area[keep] / area[keep]
    low, high = np.percentile(density, [5, 95])
    charts = int(_components(len(faces), _face_pairs(faces)).max() + 1) if len(faces) else 0
    return AtlasStats(charts, float(uv_area.sum()), float(high / max(low, 1e-30)))
