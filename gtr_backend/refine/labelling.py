"""Which view textures each face: one view per patch, not a blend of all that see it.

A blend of every view that sees a surface point is only as sharp as the views agree: where the shape is off by a
little, or the views saw it from different distances, printed detail ghosts and blurs. Here each face takes one
view (the approach of Waechter, Moehrle and Goesele, "Let There Be Color! Large-Scale Texturing of 3D
Reconstructions", 2014), chosen by a labelling of the faces that trades
- a data term: how well the view sees the face, its area in the view's pixels (close, square-on views see it
  with more of them) times how well it sees the face's sample points (`ViewColors.look`: unoccluded, away from
  silhouettes and depth edges, not grazing); a view is a candidate only where it sees most of the face, and a
  view whose colour of the face the others outvote and contradict (an occluder the mesh lacks, a reflection) is
  left out;
- a smoothness term: a cost for every pair of neighbouring faces that take different views (a seam);
solved by iterated conditional modes from each face's best view. The views' colours are then levelled across
the seams (the paper's global adjustment): each view's colour gets an additive correction at the vertices of the
faces it textures, as even as possible inside each patch while both sides of every seam agree, a sparse
least-squares problem solved by conjugate gradients; a texel's correction is interpolated across its face.
Faces that no view sees well keep label -1 (their texels are blended and filled as before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from ..mesh.clean import face_neighbours, shared_edges
from ..mesh.mesh import Mesh
from ..render.raster import clip_to_pixels, project, sample_images

if TYPE_CHECKING:
    from .projection import ViewColors

# Where on each face the views are tested: its centroid, points towards its corners and its edges' midpoints.
FACE_SAMPLES = torch.tensor(
    [[1 / 3, 1 / 3, 1 / 3]]
    + [[0.7 if i == k else 0.15 for i in range(3)] for k in range(3)]
    + [[0.0 if i == k else 0.5 for i in range(3)] for k in range(3)]
)
SEAM_SAMPLES = (0.1, 0.3, 0.5, 0.7, 0.9)  # where along a seam edge the two views' colours are compared


@dataclass(frozen=True)
class LabelOptions:
    seam_cost: float = 0.15  # cost of a seam with each neighbour, against data costs in [0, 1] (1 - relative score)
    min_seen: float = 0.5  # share of a face's sample points a view must see to be a candidate for it
    iterations: int = 12  # sweeps of iterated conditional modes
    level: bool = True  # level the views' colours across seams
    evenness: float = 0.5  # weight of an even correction inside a patch against the seams' agreement
    max_offset: float = 0.25  # the levelling never shifts a colour by more than this (0-1)
    max_difference: float = 0.1  # seam colours further apart (mean abs) show different detail, not a shift
    max_spread: float = 0.04  # nor do differences that vary by more than this along a seam edge


@dataclass(frozen=True)
class ViewLabels:
    """The view of each face of a mesh, and the levelling of the views' colours across seams."""

    labels: Tensor  # (F,) long: the view that textures each face; -1 where no view sees it well
    corners: Tensor  # (F, 3, 3) world positions of each face's corners
    corner_offsets: Tensor  # (F, 3, 3) rgb added to its view's colour at each corner of a face (0: no levelling)

    def offsets(self, points: Tensor, faces: Tensor) -> Tensor:
        """The levelling (P, 3) of points (P, 3) lying on faces (P,): their corners' offsets, interpolated."""
        a, b, c = self.corners[faces].unbind(1)
        weights = barycentrics(points.float(), a, b, c)  # (P, 3)
        return (weights[..., None] * self.corner_offsets[faces]).sum(1)


def barycentrics(points: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """(P, 3) barycentric coordinates of points (P, 3) in triangles (P, 3) x 3, clamped to the triangle."""
    u, v, w = b - a, c - a, points - a
    uu, uv, vv = (u * u).sum(-1), (u * v).sum(-1), (v * v).sum(-1)
    wu, wv = (w * u).sum(-1), (w * v).sum(-1)
    det = (uu * vv - uv * uv).clamp_min(1e-20)
    s, t = (vv * wu - uv * wv) / det, (uu * wv - uv * wu) / det
    weights = torch.stack([1 - s - t, s, t], dim=-1).clamp_min(0)
    return weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)


def choose_views(views: ViewColors, mesh: Mesh, options: LabelOptions = LabelOptions()) -> ViewLabels:
    """Label each face of `mesh` (world frame) with the view of `views` that textures it (module docstring)."""
    welded, index = torch.unique(mesh.vertices.detach().float(), dim=0, return_inverse=True)
    faces = index[mesh.faces]  # same faces, in the same order, on vertices merged across UV seams
    corners = welded[faces]  # (F, 3, 3)
    num_views = views.views.num_views
    if len(faces) == 0:
        return ViewLabels(faces.new_zeros((0,)), corners, corners)
    score, colour = face_scores(views, welded, faces, options)  # (N, F), (N, F, 3)
    candidate = score > 0
    candidate &= photo_consistent(colour, score, views.options.agreement)
    best = torch.where(candidate, score, torch.zeros_like(score)).max(0).values  # (F,)
    cost = torch.where(candidate, 1 - score / best.clamp_min(1e-12), torch.full_like(score, 1e3)).T  # (F, N)
    labelled = candidate.any(0)
    labels = torch.where(labelled, cost.argmin(1), torch.full_like(labelled, -1, dtype=torch.long))
    labels = _iterated_modes(labels, cost, face_neighbours(faces), options)
    offsets = corners * 0
    if options.level and num_views > 1:
        offsets = level_seams(views, welded, faces, labels, options)
    return ViewLabels(labels, corners, offsets)


def face_scores(views: ViewColors, vertices: Tensor, faces: Tensor, options: LabelOptions) -> tuple[Tensor, Tensor]:
    """How well each view sees each face, (N, F) (0: not a candidate), and the mean colour it shows there
    (N, F, 3)."""
    v = views.views
    corners = vertices[faces]
    normals = F.normalize(torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), dim=-1)
    samples = FACE_SAMPLES.to(vertices)
    points = torch.einsum("sk,fkc->fsc", samples, corners).reshape(-1, 3)
    pixels, quality = views.look(points, normals.repeat_interleave(len(samples), 0))
    quality = quality.reshape(v.num_views, len(faces), len(samples))
    seen = quality > 0
    rgb = sample_images(v.rgb, pixels, "bilinear", "border").reshape(v.num_views, len(faces), len(samples), 3)
    colour = (rgb * seen[..., None]).sum(2) / seen.sum(2, keepdim=True).clamp_min(1)
    corner_pixels = clip_to_pixels(project(vertices, v.intrinsics, v.c2w, v.height, v.width), v.height, v.width)
    a, b, c = (corner_pixels[:, faces[:, k]] for k in range(3))  # (N, F, 2)
    area = 0.5 * ((b - a)[..., 0] * (c - a)[..., 1] - (b - a)[..., 1] * (c - a)[..., 0]).abs()  # pixels
    score = area * quality.mean(2)
    return torch.where(seen.float().mean(2) >= options.min_seen, score, torch.zeros_like(score)), colour


def photo_consistent(colour: Tensor, score: Tensor, agreement: float) -> Tensor:
    """(N, F) bool: which candidate views' colours of a face (N, F, 3) agree with the consensus of the views
    that see it (weighted by `score` (N, F), views far from it counting less, three rounds); a view is left out
    only where the others outweigh it and differ from it by more than `agreement` (mean abs)."""
    weight = score.clone()
    consensus = colour[0] * 0
    for _ in range(3):
        consensus = (weight[..., None] * colour).sum(0) / weight.sum(0).clamp_min(1e-12)[:, None]
        distance = (colour - consensus).abs().mean(-1)
        weight = score * torch.exp(-((distance / agreement) ** 2))
    outweighed = score.sum(0, keepdim=True) - score > score
    return ~(outweighed & (distance > agreement)) | (score.sum(0, keepdim=True) <= 0)


def _iterated_modes(labels: Tensor, cost: Tensor, pairs: Tensor, options: LabelOptions) -> Tensor:
    """Iterated conditional modes on the Potts model: each face (F,) takes the view (of F x N `cost`) that is
    cheapest given its neighbours' (pairs (P, 2), both orders); faces update alternately, half at a time."""
    num_views = cost.shape[1]
    labelled = labels >= 0
    if not bool(labelled.any()) or len(pairs) == 0:
        return labels
    parity = torch.arange(len(labels), device=labels.device) % 2
    for sweep in range(options.iterations):
        neighbour = labels[pairs[:, 1]]
        known = neighbour >= 0
        same = torch.zeros_like(cost).index_add_(
            0, pairs[known, 0], F.one_hot(neighbour[known], num_views).to(cost.dtype)
        )  # (F, N): neighbours already on each view
        degree = same.sum(1, keepdim=True)
        total = cost + options.seam_cost * (degree - same)
        proposal = total.argmin(1)
        turn = labelled & (parity == sweep % 2)
        changed = turn & (proposal != labels)
        labels = torch.where(turn, proposal, labels)
        if sweep > 1 and not bool(changed.any()):
            break
    return labels


def level_seams(views: ViewColors, vertices: Tensor, faces: Tensor, labels: Tensor, options: LabelOptions) -> Tensor:
    """The levelling's offsets (F, 3, 3) at each face's corners (module docstring); 0 on unlabelled faces."""
    num_views = views.views.num_views
    labelled = labels >= 0
    offsets = torch.zeros((len(faces), 3, 3), device=vertices.device)
    pairs, edges = shared_edges(faces)
    if len(pairs) == 0:
        return offsets
    left, right = labels[pairs[:, 0]], labels[pairs[:, 1]]
    seam = (left >= 0) & (right >= 0) & (left != right)
    if not bool(seam.any()):
        return offsets
    # One unknown per (vertex, view) that a labelled face has at a corner.
    keys = faces * num_views + labels[:, None]  # (F, 3)
    unknowns, corner_unknown = torch.unique(keys[labelled], return_inverse=True)

    def unknown(vertex: Tensor, view: Tensor) -> Tensor:
        return torch.searchsorted(unknowns, vertex * num_views + view)

    rows: list[Tensor] = []
    columns: list[Tensor] = []
    values: list[Tensor] = []
    targets: list[Tensor] = []
    count = 0

    def add(columns_: Tensor, values_: Tensor, target: Tensor) -> None:  # one row per leading index
        nonlocal count
        n, k = columns_.shape
        rows.append(torch.arange(count, count + n, device=vertices.device)[:, None].expand(n, k).reshape(-1))
        columns.append(columns_.reshape(-1))
        values.append(values_.reshape(-1))
        targets.append(target)
        count += n

    # Seams: at points along each seam edge, both sides' colours (each with its correction) agree.
    a, b = edges[seam, 0], edges[seam, 1]
    view_l, view_r = left[seam], right[seam]
    normals = F.normalize(
        sum(
            torch.linalg.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
            for c in (vertices[faces[pairs[seam, 0]]], vertices[faces[pairs[seam, 1]]])
        ),
        dim=-1,
    )
    index = torch.arange(len(a), device=vertices.device)
    differences, seen = [], []
    for t in SEAM_SAMPLES:
        pixels, quality = views.look((1 - t) * vertices[a] + t * vertices[b], normals)
        rgb = sample_images(views.views.rgb, pixels, "bilinear", "border")  # (N, E, 3)
        differences.append(rgb[view_r, index] - rgb[view_l, index])
        seen.append((quality[view_l, index] > 0) & (quality[view_r, index] > 0))
    difference = torch.stack(differences, dim=1)  # (E, T, 3)
    # A colour shift between two views is the same all along a seam edge, and small; a difference that varies
    # along it (or is large) is detail the two views place differently, which levelling must not smear.
    spread = (difference.max(1).values - difference.min(1).values).abs().max(-1).values
    usable = torch.stack(seen, dim=1).all(1) & (spread <= options.max_spread)
    usable &= difference.abs().mean((1, 2)) <= options.max_difference
    columns_ = torch.stack(
        [
            unknown(a[usable], view_l[usable]),
            unknown(b[usable], view_l[usable]),
            unknown(a[usable], view_r[usable]),
            unknown(b[usable], view_r[usable]),
        ],
        dim=1,
    )
    for k, t in enumerate(SEAM_SAMPLES if bool(usable.any()) else ()):
        weights = torch.tensor([1 - t, t, -(1 - t), -t], device=vertices.device).expand(len(columns_), 4)
        add(columns_, weights, difference[usable, k])
    if count == 0:
        return offsets
    # Evenness: inside a patch, the corrections at the two ends of every edge are alike.
    patch = corner_unknown  # (L, 3) unknowns of the labelled faces' corners
    for i, j in ((0, 1), (1, 2), (2, 0)):
        pair = torch.stack([patch[:, i], patch[:, j]], dim=1)
        weight = torch.tensor([1.0, -1.0], device=vertices.device) * options.evenness**0.5
        add(pair, weight.expand(len(pair), 2), torch.zeros((len(pair), 3), device=vertices.device))
    # A small pull towards no correction fixes patches that no seam ties to another.
    every = torch.arange(len(unknowns), device=vertices.device)[:, None]
    add(every, torch.full((len(every), 1), 0.03, device=vertices.device), torch.zeros((len(every), 3)).to(vertices))
    matrix = torch.sparse_coo_tensor(
        torch.stack([torch.cat(rows), torch.cat(columns)]),
        torch.cat(values),
        (count, len(unknowns)),
        check_invariants=False,
    ).coalesce()
    solution = _least_squares(matrix, torch.cat(targets)).clamp(-options.max_offset, options.max_offset)
    offsets[labelled] = solution[corner_unknown]
    return offsets


def _least_squares(matrix: Tensor, target: Tensor, iterations: int = 300, tolerance: float = 1e-6) -> Tensor:
    """x (M, C) minimising |matrix x - target|^2 for a sparse (R, M) matrix and (R, C) targets: conjugate
    gradients on the normal equations (matrix^T matrix never formed), each column on its own, with a Jacobi
    preconditioner."""
    transposed = matrix.t().coalesce()

    def normal(x: Tensor) -> Tensor:
        return torch.sparse.mm(transposed, torch.sparse.mm(matrix, x))

    columns, values = matrix.indices()[1], matrix.values()
    diagonal = torch.zeros(matrix.shape[1], device=target.device).index_add_(0, columns, values.square())
    inverse = 1 / diagonal.clamp_min(1e-12)[:, None]
    rhs = torch.sparse.mm(transposed, target)
    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    z = inverse * residual
    direction = z.clone()
    rz = (residual * z).sum(0)
    start = rhs.norm(dim=0).clamp_min(1e-12)
    for _ in range(iterations):
        step = normal(direction)
        alpha = rz / (direction * step).sum(0).clamp_min(1e-20)
        x = x + alpha * direction
        residual = residual - alpha * step
        if bool((residual.norm(dim=0) <= tolerance * start).all()):
            break
        z = inverse * residual
        rz_next = (residual * z).sum(0)
        direction = z + (rz_next / rz.clamp_min(1e-20)) * direction
        rz = rz_next
    return x
