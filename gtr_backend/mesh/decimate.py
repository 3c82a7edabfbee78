"""Error-driven, crease-preserving simplification: quadric edge collapse (Garland and Heckbert 1997), in rounds.

Every vertex carries the quadric of the planes of the original faces around it, weighted by their area (and, on
open borders, of planes through the border edges standing across the surface, so borders stay where they are).
Collapsing an edge moves its two ends to the point closest, in the least-squares sense, to all their planes (on
a crease: onto the crease; at a corner: onto the corner, so marching cubes' bevelled edges come out sharp
again) and costs the area-weighted RMS distance from that point to those planes, in world units.

Collapses run in parallel rounds (vectorised, no loop over edges): a round takes the edges that are the cheapest
within two rings of their ends (so no face is touched by two collapses), refuses those that would pinch the
surface (link condition) or turn a face by more than `max_turn_deg` (folds, flips), and then looks again among
the edges no accepted collapse touches, a few times. It stops when no edge is left whose error stays within
`max_error` or when the face count reaches `max_faces`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .clean import face_neighbours
from .mesh import Mesh


@dataclass(frozen=True)
class DecimateOptions:
    max_error: float = math.inf  # world units: the RMS distance a collapsed vertex may lie from its original planes
    max_faces: int = 0  # stop at this many faces (0: only the error decides)
    max_turn_deg: float = 60.0  # a collapse may turn no face by more than this
    border_weight: float = 10.0  # weight of the planes that hold open borders, relative to the faces'
    regularisation: float = 0.01  # directions the planes hold less than this share of the firmest are left free
    picks_per_round: int = 8  # how many times a round looks again among the edges its collapses leave untouched
    max_rounds: int = 500
    min_progress: float = 0.005  # after two rounds in a row that remove less than this share of the faces, stop


AUTO_FACE_ERROR = 0.00125  # "Faces: Auto": the RMS error allowed, as a share of the object's radius
SHARPEN_PASSES = 6  # passes after the first, each with planes filtered afresh, while they still remove faces


def object_radius(mesh: Mesh) -> float:
    """The radius of a sphere about the centre of the mesh's bounding box that holds it (world units)."""
    if mesh.num_vertices == 0:
        return 0.0
    centre = (mesh.vertices.max(0).values + mesh.vertices.min(0).values) / 2
    return float((mesh.vertices - centre).norm(dim=-1).max())


def simplify_by_error(mesh: Mesh, relative_error: float = AUTO_FACE_ERROR, max_faces: int = 0) -> Mesh:
    """ "Faces: Auto": `mesh` simplified as far as an RMS error of `relative_error` times the object's radius
    allows (creases kept sharp, flat sides a few large faces), then to at most `max_faces` (0: no cap).

    The first pass measures the error against the input's filtered planes (`filtered_planes`); a rounded crease
    that marching cubes left keeps a narrow strip of small faces, so later passes filter the planes of what is
    left afresh (the strip's faces now take the planes of the large faces beside them) and allow half the error
    again, which folds the strip onto the crease while smooth, curved parts barely change."""
    tolerance = relative_error * object_radius(mesh)
    result = decimate(mesh, DecimateOptions(max_error=tolerance), planes=filtered_planes(mesh))
    for _ in range(SHARPEN_PASSES):
        again = decimate(result, DecimateOptions(max_error=tolerance / 4), planes=filtered_planes(result))
        if again.num_faces >= result.num_faces:
            break
        result = again
    if max_faces and result.num_faces > max_faces:
        result = decimate(result, DecimateOptions(max_faces=max_faces), planes=filtered_planes(result))
    return result


def decimate(mesh: Mesh, options: DecimateOptions | None = None, planes: Tensor | None = None) -> Mesh:
    """A simplified copy of `mesh` (vertices and faces only; UVs and colours are dropped), world frame.
    `planes` (F, 4): the planes (unit normal, offset: n . x + d = 0) the faces stand for in the quadrics
    (default: their own), e.g. filtered ones (`filtered_planes`), so that a rounded crease counts as the two
    planes that meet there."""
    options = options or DecimateOptions()
    device = mesh.vertices.device
    vertices = mesh.vertices.detach().cpu().double().clone()
    faces = mesh.faces.detach().cpu().long().clone()
    proper = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])
    faces = faces[proper]
    given = None if planes is None else planes.detach().cpu().double()[proper]
    quadric = _quadrics(vertices, faces, options.border_weight, given)
    limit = options.max_error**2 if math.isfinite(options.max_error) else math.inf
    cos_turn = math.cos(math.radians(options.max_turn_deg))
    cache = _Cache()
    slow = 0  # rounds in a row that removed little
    for _ in range(options.max_rounds):
        if options.max_faces and len(faces) <= options.max_faces:
            break
        collapsed = _round(vertices, faces, quadric, limit, cos_turn, options, cache)
        if collapsed is None:
            break
        slow = slow + 1 if len(collapsed) > (1 - options.min_progress) * len(faces) else 0
        faces = collapsed
        if slow == 2:  # the last few collapses left are not worth a round each
            break
    used, index = torch.unique(faces, return_inverse=True)
    return Mesh(vertices[used].float().to(device), index.reshape(-1, 3).to(device))


class _Quadric:
    """Per-vertex quadrics: error(x) = x^T A x + 2 b^T x + c, with w the area they were gathered over."""

    def __init__(self, a: Tensor, b: Tensor, c: Tensor, w: Tensor) -> None:
        self.a, self.b, self.c, self.w = a, b, c, w


def _quadrics(vertices: Tensor, faces: Tensor, border_weight: float, given: Tensor | None) -> _Quadric:
    n = len(vertices)
    p0, p1, p2 = (vertices[faces[:, i]] for i in range(3))
    cross = torch.linalg.cross(p1 - p0, p2 - p0)
    double_area = cross.norm(dim=-1)
    normal = cross / double_area.clamp_min(1e-30)[:, None]
    area = double_area / 2
    if given is None:
        planes = [(normal, -(normal * p0).sum(-1), area, faces)]
    else:
        planes = [(given[:, :3], given[:, 3], area, faces)]
    # Open borders: a plane through each border edge, standing across the face, weighted by its length squared.
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = edges.min(dim=1).values * n + edges.max(dim=1).values
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    border = counts[inverse] == 1
    if bool(border.any()):
        ends = edges[border]
        face_normal = normal.repeat(3, 1)[border]
        along = vertices[ends[:, 1]] - vertices[ends[:, 0]]
        across = torch.linalg.cross(along, face_normal)
        length = across.norm(dim=-1)
        across = across / length.clamp_min(1e-30)[:, None]
        weight = border_weight * length.square()
        planes.append((across, -(across * vertices[ends[:, 0]]).sum(-1), weight, ends))
    a = torch.zeros((n, 3, 3), dtype=vertices.dtype)
    b = torch.zeros((n, 3), dtype=vertices.dtype)
    c = torch.zeros(n, dtype=vertices.dtype)
    w = torch.zeros(n, dtype=vertices.dtype)
    for plane_normal, offset, weight, corners in planes:
        outer = weight[:, None, None] * plane_normal[:, :, None] * plane_normal[:, None, :]
        for k in range(corners.shape[1]):
            a.index_add_(0, corners[:, k], outer)
            b.index_add_(0, corners[:, k], (weight * offset)[:, None] * plane_normal)
            c.index_add_(0, corners[:, k], weight * offset.square())
            w.index_add_(0, corners[:, k], weight)
    return _Quadric(a, b, c, w)


class _Cache:
    """Each edge's optimal point and error from the last round (keyed a * n + b, sorted), and which vertices
    have moved since (their edges are computed again)."""

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.point = self.error = self.changed = torch.zeros(0)


def _optimal(vertices: Tensor, quadric: _Quadric, a: Tensor, b: Tensor, regularisation: float) -> tuple[Tensor, Tensor]:
    """For edges (a, b): the point closest to their ends' planes (pulled towards the middle where the planes
    leave it free) and its RMS distance to them, squared (`_error`)."""
    qa = quadric.a[a] + quadric.a[b]
    qb = quadric.b[a] + quadric.b[b]
    middle = (vertices[a] + vertices[b]) / 2
    # The least-squares point nearest the middle: the quadric's pseudo-inverse, dropping the directions its
    # planes leave (nearly) free (a flat region: along it; a crease: along the crease).
    values, vectors = torch.linalg.eigh(qa)
    kept = values > regularisation * values[:, -1:].clamp_min(1e-30)
    residual = -(qb + torch.einsum("eij,ej->ei", qa, middle))  # the gradient's pull at the middle
    along = torch.einsum("eji,ej->ei", vectors, residual) / torch.where(kept, values, torch.ones_like(values))
    point = middle + torch.einsum("eij,ej->ei", vectors, torch.where(kept, along, torch.zeros_like(along)))
    length = (vertices[a] - vertices[b]).norm(dim=-1)
    astray = (point - middle).norm(dim=-1) > 2 * length  # an ill-posed solve: stay between the ends
    point = torch.where(astray[:, None], middle, point)
    return point, _error(quadric, a, b, point)


def _round(
    vertices: Tensor,
    faces: Tensor,
    quadric: _Quadric,
    limit: float,
    cos_turn: float,
    options: DecimateOptions,
    cache: _Cache,
) -> Tensor | None:
    """One round of parallel collapses: updates `vertices`, `quadric` and `cache` in place and returns the new
    faces, or None when no edge can collapse."""
    n = len(vertices)
    directed = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = directed.min(dim=1).values * n + directed.max(dim=1).values
    unique, counts = torch.unique(key, return_counts=True)
    a, b = unique // n, unique % n
    border_edge = counts == 1
    on_border = torch.zeros(n, dtype=torch.bool)
    on_border[a[border_edge]] = True
    on_border[b[border_edge]] = True

    # The optimal point of each edge and its cost: kept from the last round where neither end changed.
    point = torch.empty((len(unique), 3), dtype=vertices.dtype)
    error = torch.empty(len(unique), dtype=vertices.dtype)
    fresh = torch.ones(len(unique), dtype=torch.bool)
    if cache.keys is not None and len(cache.keys):
        at = torch.searchsorted(cache.keys, unique).clamp_max(len(cache.keys) - 1)
        fresh = (cache.keys[at] != unique) | cache.changed[a] | cache.changed[b]
        point[~fresh], error[~fresh] = cache.point[at[~fresh]], cache.error[at[~fresh]]
    point[fresh], error[fresh] = _optimal(vertices, quadric, a[fresh], b[fresh], options.regularisation)
    cache.keys, cache.point, cache.error = unique, point.clone(), error.clone()
    cache.changed = torch.zeros(n, dtype=torch.bool)
    allowed = (counts <= 2) & (error <= limit) & ~(~border_edge & on_border[a] & on_border[b])
    if not bool(allowed.any()):
        return None
    # Cheapest first; equal costs (a flat region) in a random order, so that the picks spread evenly.
    shuffle = torch.randperm(len(error), generator=torch.Generator().manual_seed(len(faces)))
    cost = torch.where(allowed, error, torch.full_like(error, math.inf))[shuffle]
    order = shuffle[torch.sort(cost, stable=True).indices]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))

    neighbours = _adjacency(a, b, n)
    face_keys = _face_keys(faces, n)
    around = _incidence(faces, n)
    face_normal = _normals(vertices, faces)
    chosen = torch.zeros(len(a), dtype=torch.bool)
    blocked = torch.zeros(n, dtype=torch.bool)
    live = torch.nonzero(allowed).squeeze(1)  # the edges still in play this round
    big = len(rank)
    for _ in range(options.picks_per_round):
        live = live[~blocked[a[live]] & ~blocked[b[live]]]
        if len(live) == 0:
            break
        live_a, live_b, live_rank = a[live], b[live], rank[live]
        lowest = torch.full((n,), big, dtype=rank.dtype)
        lowest.scatter_reduce_(0, live_a, live_rank, "amin")
        lowest.scatter_reduce_(0, live_b, live_rank, "amin")
        # The cheapest live edge within one ring of each vertex, over every edge of the mesh (two collapses
        # must not touch one face, whether or not the edge between them could collapse).
        ring = lowest.clone()
        ring.scatter_reduce_(0, a, lowest[b], "amin")
        ring.scatter_reduce_(0, b, lowest[a], "amin")
        pick = (live_rank == ring[live_a]) & (live_rank == ring[live_b])
        picked = live[pick]
        live = live[~pick]  # picked ones are taken now, or refused for this round
        picked = picked[_link_ok(a[picked], b[picked], border_edge[picked], neighbours, face_keys, n)]
        # Where the optimal point would fold a face, either end may do (if its error is allowed too).
        places = torch.stack([point[picked], vertices[a[picked]], vertices[b[picked]]])  # (3, K, 3)
        ok = torch.stack([_error(quadric, a[picked], b[picked], x) for x in places]) <= limit
        ok &= _no_fold(vertices, faces, face_normal, around, a[picked], b[picked], places, cos_turn)
        first = torch.argmax(ok.to(torch.uint8), dim=0)  # the first placement that works
        good = ok.any(dim=0)
        point[picked[good]] = places[first[good], torch.nonzero(good).squeeze(1)]
        chosen[picked[good]] = True
        # Everything within one ring of an accepted collapse is off limits for the rest of the round.
        ends = torch.cat([a[picked[good]], b[picked[good]]])
        blocked[ends] = True
        blocked[_gather_neighbours(ends, neighbours)[1]] = True
    if not bool(chosen.any()):
        return None
    picked = torch.nonzero(chosen).squeeze(1)
    if options.max_faces:  # each collapse removes two faces (one on a border): stop at the cap
        removed = torch.where(border_edge[picked], 1, 2)
        keep = torch.cumsum(removed[torch.argsort(rank[picked])], 0) <= max(0, len(faces) - options.max_faces)
        keep[0] = True
        picked = picked[torch.argsort(rank[picked])][keep]
    keep_vertex, gone = a[picked], b[picked]
    cache.changed[keep_vertex] = True
    vertices[keep_vertex] = point[picked]
    for field in ("a", "b", "c", "w"):
        values = getattr(quadric, field)
        values[keep_vertex] += values[gone]
    remap = torch.arange(n)
    remap[gone] = keep_vertex
    faces = remap[faces]
    return faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])]


def _error(quadric: _Quadric, a: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """(K,) the RMS distance (squared) from points x (K, 3) to the planes of the edges (a, b)."""
    qa, qb = quadric.a[a] + quadric.a[b], quadric.b[a] + quadric.b[b]
    qc, qw = quadric.c[a] + quadric.c[b], (quadric.w[a] + quadric.w[b]).clamp_min(1e-30)
    return (torch.einsum("ei,eij,ej->e", x, qa, x) + 2 * (qb * x).sum(-1) + qc).clamp_min(0) / qw


def _adjacency(a: Tensor, b: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """(offsets (n + 1,), neighbours): each vertex's neighbours, sorted, in one flat list (CSR)."""
    source = torch.cat([a, b])
    target = torch.cat([b, a])
    order = torch.argsort(source * n + target)
    counts = torch.bincount(source, minlength=n)
    offsets = torch.zeros(n + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts, 0)
    return offsets, target[order]


def _gather_neighbours(vertex: Tensor, adjacency: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """For vertices (K,): (which of them (L,), neighbour (L,)), every neighbour of each."""
    offsets, flat = adjacency
    start, count = offsets[vertex], offsets[vertex + 1] - offsets[vertex]
    owner = torch.repeat_interleave(torch.arange(len(vertex)), count)
    position = torch.arange(int(count.sum())) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    return owner, flat[start[owner] + position]


def _link_ok(
    a: Tensor, b: Tensor, border: Tensor, adjacency: tuple[Tensor, Tensor], face_keys: Tensor, n: int
) -> Tensor:
    """(K,) bool: the ends of each edge share exactly the neighbours of the faces on it (two inside the
    surface, one on a border), and the faces (a, c, d) and (b, c, d) on those two neighbours c, d do not both
    exist (collapsing would fold them onto each other, as collapsing an edge of a tetrahedron does): collapsing
    keeps the surface a manifold. `face_keys`: the mesh's faces as `_face_keys`, sorted."""
    owner_a, around_a = _gather_neighbours(a, adjacency)
    owner_b, around_b = _gather_neighbours(b, adjacency)
    key = torch.cat([owner_a * n + around_a, owner_b * n + around_b])
    unique, counts = torch.unique(key, return_counts=True)
    common = unique[counts > 1]
    owner, vertex = common // n, common % n
    shared = torch.bincount(owner, minlength=len(a))
    ok = shared == torch.where(border, 1, 2)
    pairs = torch.nonzero(ok & ~border).squeeze(1)  # common is sorted by owner: each pair's c, d in turn
    start = torch.cumsum(shared, 0) - shared
    c, d = vertex[start[pairs]], vertex[start[pairs] + 1]
    both = _has_face(face_keys, a[pairs], c, d, n) & _has_face(face_keys, b[pairs], c, d, n)
    ok[pairs[both]] = False
    return ok


def _face_keys(faces: Tensor, n: int) -> Tensor:
    """Each face as one integer, its corners sorted (x * n + y) * n + z, sorted."""
    corners = faces.sort(dim=1).values
    return torch.sort((corners[:, 0] * n + corners[:, 1]) * n + corners[:, 2]).values


def _has_face(face_keys: Tensor, x: Tensor, y: Tensor, z: Tensor, n: int) -> Tensor:
    """(K,) bool: the faces (x, y, z) (any order) exist."""
    corners = torch.stack([x, y, z], dim=1).sort(dim=1).values
    key = (corners[:, 0] * n + corners[:, 1]) * n + corners[:, 2]
    at = torch.searchsorted(face_keys, key).clamp_max(max(len(face_keys) - 1, 0))
    return face_keys[at] == key


def _normals(vertices: Tensor, faces: Tensor) -> Tensor:
    p0, p1, p2 = (vertices[faces[:, i]] for i in range(3))
    return torch.linalg.cross(p1 - p0, p2 - p0)


def _no_fold(
    vertices: Tensor,
    faces: Tensor,
    normals: Tensor,
    around: tuple[Tensor, Tensor],
    a: Tensor,
    b: Tensor,
    places: Tensor,
    cos_turn: float,
) -> Tensor:
    """(M, K) bool: moving both ends of each edge k to its m-th place (`places` (M, K, 3)) turns none of the
    faces around them (but the two on the edge, which vanish) by more than the allowed angle, nor shrinks one to
    nothing. `around`: each vertex's faces (`_incidence`)."""
    owner_a, face_a = _gather_neighbours(a, around)
    owner_b, face_b = _gather_neighbours(b, around)
    owner, face = torch.cat([owner_a, owner_b]), torch.cat([face_a, face_b])
    corners = faces[face]  # (T, 3)
    moving = (corners == a[owner][:, None]) | (corners == b[owner][:, None])
    keep = moving.sum(dim=1) == 1  # the faces on the edge itself (two corners moving) vanish
    owner, face, corners, moving = owner[keep], face[keep], corners[keep], moving[keep]
    old = normals[face]  # (T, 3)
    still = vertices[corners]  # (T, 3, 3)
    ok = torch.ones(places.shape[:2], dtype=torch.bool)
    for m, place in enumerate(places):
        moved = torch.where(moving[..., None], place[owner][:, None, :], still)
        new = torch.linalg.cross(moved[:, 1] - moved[:, 0], moved[:, 2] - moved[:, 0])
        old_length, new_length = old.norm(dim=-1), new.norm(dim=-1)
        turned = (new * old).sum(-1) < cos_turn * old_length * new_length
        degenerate = new_length < 1e-12 * old_length + 1e-30
        ok[m, owner[turned | degenerate]] = False
    return ok


def _incidence(faces: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """(offsets (n + 1,), faces): each vertex's faces in one flat list (CSR)."""
    vertex = faces.reshape(-1)
    face = torch.arange(len(faces)).repeat_interleave(3)
    order = torch.argsort(vertex)
    offsets = torch.zeros(n + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.bincount(vertex, minlength=n), 0)
    return offsets, face[order]


def filtered_planes(mesh: Mesh, iterations: int = 10, sharpness: float = 0.35) -> Tensor:
    """(F, 4) the faces' planes (unit normal, offset), bilaterally filtered: each face's plane becomes the
    area-weighted mean of its neighbours' planes, those whose normals differ by less than about `sharpness` (unit
    vectors) fully, across a crease hardly at all, `iterations` times. On a smooth surface a plane stays close
    to the face's own; on a crease that marching cubes rounded off, the faces take the planes of the sides that
    meet there, so a collapse onto the crease costs nothing."""
    vertices = mesh.vertices.detach().double()
    faces = mesh.faces
    p0, p1, p2 = (vertices[faces[:, k]] for k in range(3))
    cross = torch.linalg.cross(p1 - p0, p2 - p0)
    area = cross.norm(dim=-1, keepdim=True) / 2
    normal = cross / (2 * area).clamp_min(1e-30)
    centre = (p0 + p1 + p2) / 3
    pairs = face_neighbours(faces)
    planes = torch.cat([normal, -(normal * centre).sum(-1, keepdim=True)], dim=1)
    for _ in range(iterations):
        n = planes[:, :3]
        difference = (n[pairs[:, 0]] - n[pairs[:, 1]]).square().sum(-1, keepdim=True)
        weight = area[pairs[:, 1]] * torch.exp(-difference / sharpness**2)
        total = (area * planes).index_add(0, pairs[:, 0], weight * planes[pairs[:, 1]])
        length = total[:, :3].norm(dim=-1, keepdim=True).clamp_min(1e-30)
        planes = total / length
    return planes.to(mesh.vertices.dtype)
