"""Depth fusion: views that know their depth (a capture's depth pass) -> the exact surface they show, as a mesh.

The views' depth maps are fused into a truncated signed distance field (the approach of KinectFusion and
Open3D's TSDF integration), positive inside, in the world frame:

    f_i(x) = z_i(x) - D_i(u_i(x))        x behind (+) or in front of (-) the surface view i sees at x's pixel
    f(x)   = sum_i w_i(x) clamp(f_i(x), -t, t) / sum_i w_i(x)

over the views whose depth is known at x's pixel and that do not see x hidden more than t behind their surface.
w_i = cos^2 of the angle at which view i sees its surface there (grazing views count little; their depth steps
are the coarsest), fading to 0 as x lies deeper behind that surface (a thin part seen from both sides keeps
its thickness). Points every view sees hidden deep behind its surface are inside; then the views' silhouettes
bound the field (x outside a mask is outside: `SilhouetteCones`). The zero level set is where the depth maps
put the surface: a plane comes out flat to a fraction of a voxel, not on voxel steps.

Extraction is a narrow band refined level by level: a coarse grid over [-1, 1]^3, then only the cells near the
surface are split in two along each axis (their values recomputed with a truncation that shrinks with the
cell), down to a voxel about the size of the finest view's pixel on the object (`FusionOptions`), where
marching cubes runs on the cells the surface crosses (`marching_cubes_cells`). Memory and time follow the
surface's area, not the volume.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..render.raster import clip_to_pixels, project, sample_images
from ..views.viewset import ViewSet
from .distance import image_signed_distance
from .extract import MeshError
from .marching_cubes import CORNERS, marching_cubes_cells
from .mesh import Mesh

Progress = Callable[[float], None]
SILHOUETTE_SLACK = 0.5  # pixels the visual hull is widened by


@dataclass(frozen=True)
class FusionOptions:
    pixels_per_voxel: float = 2.5  # the finest voxel spans this many of the finest view's pixels on the object
    max_resolution: int = 257  # grid points per side of the finest level, at most
    min_resolution: int = 97
    coarse_cells: tuple[int, ...] = (12, 16)  # cells per side of the first, dense level: the finest has 2^k times
    truncation: float = 2.0  # fine voxels: how far from the surface the depth's distances are kept
    band: float = 0.75  # a cell is split when a corner is within this many cell diagonals of the surface
    depth_jump: float = 0.5  # truncations: a larger step between neighbouring pixels is an occlusion edge
    chunk_points: int = 1 << 16


def fine_resolution(views: ViewSet, options: FusionOptions) -> tuple[int, int]:
    """(grid points per side of the first level, of the finest): the finest voxel about `pixels_per_voxel` of
    the finest view's pixels at the object's centre (the origin), within the options' bounds, 2^k cells of the
    first level for each of its cells."""
    distance = views.c2w[:, :3, 3].norm(dim=-1)
    footprint = float((distance.clamp_min(0.1) / views.intrinsics[:, :2].mean(dim=1)).min())
    wanted = min(
        max(2.0 / (footprint * options.pixels_per_voxel), options.min_resolution - 1), options.max_resolution - 1
    )
    best = (options.coarse_cells[0], options.coarse_cells[0])
    for coarse in options.coarse_cells:
        cells = coarse
        while cells * 2 <= options.max_resolution - 1 and abs(cells * 2 - wanted) < abs(cells - wanted):
            cells *= 2
        if abs(cells - wanted) < abs(best[1] - wanted):
            best = (coarse, cells)
    return best[0] + 1, best[1] + 1


class DepthField:
    """The fused field f(x) of the module docstring for world points, at a truncation set per query."""

    def __init__(self, views: ViewSet, depth_jump: float, silhouette_band: int = 8) -> None:
        if views.depth is None:
            raise ValueError("depth fusion needs views with depth")
        self.views = views
        depth = views.depth
        known = (depth > 0).float()
        # One image stack per view, read with one bilinear lookup per point: depth and depth^2 over the known
        # pixels (their spread tells an occlusion edge), how many are known, how squarely the surface is seen
        # there, and the signed distance to the mask's outline (pixels, shifted so that the zero padding
        # outside the image reads as far outside).
        self.band = silhouette_band
        outline = image_signed_distance(views.foreground(), silhouette_band)[:, None] + silhouette_band
        self.maps = torch.cat([depth * known, depth.square() * known, known, facing_cosines(views), outline], 1)
        self.focal = views.intrinsics[:, :2].mean(dim=1, keepdim=True)  # (N, 1)
        self.depth_jump = depth_jump

    def __call__(self, points: Tensor, truncation: float) -> Tensor:
        """World points (P, 3) -> f (P,) clamped to [-truncation, truncation], positive inside."""
        views = self.views
        clip = project(points, views.intrinsics, views.c2w, views.height, views.width)  # (N, P, 4)
        pixels = clip_to_pixels(clip, views.height, views.width)
        z = clip[..., 3]
        total_depth, total_square, known, cosine, outline = sample_images(self.maps, pixels).unbind(-1)
        in_front_of_camera = z > 1e-6
        # Depth: interpolated between the known pixels around x's pixel when they all lie on one surface (a
        # spread of depth under `depth_jump` truncations); at an occlusion edge the view says nothing.
        all_known = known > 0.999
        depth = total_depth / known.clamp_min(1e-6)
        spread = (total_square / known.clamp_min(1e-6) - depth.square()).clamp_min(0).sqrt()
        seen = all_known & (spread < self.depth_jump * truncation) & in_front_of_camera
        # Along the ray, times the cosine at which the view sees its surface: about the distance to that surface
        # (a plane: exactly), so every view gives the same straight field across the surface, grazing or not.
        behind = (z - depth) * cosine  # (N, P): + behind the seen surface
        # Farther than half the truncation from the surface the view sees, less weight (linear to none at the
        # truncation): close to the surface every view that sees it keeps its weight (a straight field across
        # it), a view whose ray meets some other surface farther off counts less, and a thin part seen from both
        # sides keeps its thickness.
        fade = ((truncation - behind.abs()) / (truncation / 2)).clamp(0, 1)
        weight = torch.where(seen, cosine.square() * fade, torch.zeros_like(fade))
        # Seen in front of a view's surface, a point is empty (that view looks through it); seen behind one, it
        # is inside or merely hidden (beside a convex edge, say). So where some view sees the point in front of
        # its surface by a quarter of the truncation or more, the views that see it behind theirs are ignored,
        # and surfaces do not bulge out beside their edges.
        in_front = torch.where(seen & (weight > 0), -behind, torch.zeros_like(behind)).max(dim=0).values
        trust_behind = (1.0 - 8.0 * in_front / truncation).clamp(0, 1)
        weight = torch.where(behind > 0, weight * trust_behind, weight)
        total = weight.sum(dim=0)
        fused = (weight * behind).sum(dim=0) / total.clamp_min(1e-12)
        # Far from every seen surface: empty if some view sees through the point to a surface beyond it, inside
        # if views see it only hidden behind their surfaces.
        through = (seen & (behind <= -truncation)).any(dim=0)
        hidden = (seen & (behind >= truncation)).any(dim=0)
        fallback = torch.where(hidden & ~through, truncation, -truncation)
        fused = torch.where(total > 1e-6, fused, fallback)
        # Outside any mask is outside, whatever the depth says: the visual hull, in world units near the outline,
        # widened by `SILHOUETTE_SLACK` pixels (the binary mask's outline is only good to a pixel; where the depth
        # maps see the surface they place it more finely). Beyond the band a point is simply far outside.
        to_outline = outline - self.band + SILHOUETTE_SLACK
        far = (outline <= 1e-3) | ~in_front_of_camera
        hull = torch.where(far, -math.inf, to_outline * z.clamp_min(1e-6) / self.focal).min(dim=0).values
        return torch.minimum(fused, hull).clamp(-truncation, truncation)


def facing_cosines(views: ViewSet, floor: float = 0.15) -> Tensor:
    """(N, 1, H, W): the cosine of the angle between each pixel's viewing ray and the surface normal there,
    from the depth map's pixel derivatives (lightly smoothed: the depth pass is sampled at one jittered point per
    pixel; differences only across one surface), at least `floor` where depth is known, 0 where it is not.

    With r = ((u - cx) / fx, (v - cy) / fy, 1) the ray through pixel (u, v) and z its depth, the surface point
    z r has the normal n = (-fx z_u, -fy z_v, fx z_u r_x + fy z_v r_y + z), and n . r = z, so
    cos = z / (|n| |r|)."""
    assert views.depth is not None
    depth = views.depth[:, 0]
    known = depth > 0
    _, h, w = depth.shape
    kernel = torch.ones((1, 1, 3, 3), device=depth.device)
    total = F.conv2d((depth * known)[:, None], kernel, padding=1)[:, 0]
    count = F.conv2d(known[:, None].float(), kernel, padding=1)[:, 0]
    z = torch.where(known, total / count.clamp_min(1), depth)
    fx, fy, cx, cy = (views.intrinsics[:, i, None, None] for i in range(4))

    def derivative(dim: int) -> Tensor:
        """dz per pixel along `dim` (2: u, 1: v): central where both neighbours lie on the same surface."""
        size = z.shape[dim]
        ahead = torch.cat([z.narrow(dim, 1, size - 1), z.narrow(dim, size - 1, 1)], dim) - z
        back = z - torch.cat([z.narrow(dim, 0, 1), z.narrow(dim, 0, size - 1)], dim)
        limit = 4.0 * z / fx  # a step of more than a few pixels' footprint is an occlusion edge
        ok_ahead, ok_back = ahead.abs() < limit, back.abs() < limit
        ok_ahead &= torch.cat([known.narrow(dim, 1, size - 1), known.narrow(dim, 0, 1) & False], dim)
        ok_back &= torch.cat([known.narrow(dim, 0, 1) & False, known.narrow(dim, 0, size - 1)], dim)
        both = ok_ahead & ok_back
        one = torch.where(ok_ahead, ahead, torch.where(ok_back, back, torch.zeros_like(ahead)))
        return torch.where(both, (ahead + back) / 2, one)

    z_u, z_v = derivative(2), derivative(1)
    v, u = torch.meshgrid(
        torch.arange(h, device=depth.device) + 0.5, torch.arange(w, device=depth.device) + 0.5, indexing="ij"
    )
    r_x, r_y = (u - cx) / fx, (v - cy) / fy
    normal = torch.stack([-fx * z_u, -fy * z_v, fx * z_u * r_x + fy * z_v * r_y + z], dim=-1)
    ray = torch.sqrt(r_x.square() + r_y.square() + 1)
    cosine = z / (normal.norm(dim=-1) * ray).clamp_min(1e-12)
    return torch.where(known, cosine.clamp(floor, 1.0), torch.zeros_like(z))[:, None]


_CHILD = torch.tensor([(i, j, k) for i in range(3) for j in range(3) for k in range(3)], dtype=torch.long)  # (27, 3)
_CORNER = torch.tensor(CORNERS, dtype=torch.long)  # (8, 3)


def fuse_depth(views: ViewSet, options: FusionOptions | None = None, progress: Progress | None = None) -> Mesh:
    """Views with depth (N, 1, H, W) -> the mesh of their fused field's zero level set (world frame), extracted
    on a narrow band down to `fine_resolution`. `progress` is told the fraction done (and may raise to cancel).
    Raises `MeshError` when the depth maps and masks leave no surface."""
    options = options or FusionOptions()
    device = views.device
    first, final = fine_resolution(views, options)
    levels = round(math.log2((final - 1) / (first - 1)))
    fine_voxel = 2.0 / (final - 1)
    coarse_cell = 2.0 / (first - 1)
    field = DepthField(views, options.depth_jump)

    def evaluate(points: Tensor, truncation: float) -> Tensor:
        return (
            torch.cat(
                [
                    field(points[i : i + options.chunk_points], truncation)
                    for i in range(0, len(points), options.chunk_points)
                ]
            )
            if len(points)
            else points.new_zeros((0,))
        )

    # The first level: dense.
    n = first
    axis = torch.arange(n - 1, device=device)
    cells = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    cell_size = coarse_cell
    lattice = cells[:, None, :] + _CORNER.to(device)  # (M, 8, 3)
    first_level = functools.partial(evaluate, truncation=_truncation(cell_size, fine_voxel, levels == 0, options))
    values = _values_at(lattice, n, first_level)
    for level in range(levels + 1):
        if progress:
            progress(level / (levels + 1))
        diagonal = cell_size * math.sqrt(3)
        crossing = (values > 0).any(dim=1) & (values <= 0).any(dim=1)
        if level == levels:
            finest = functools.partial(evaluate, truncation=_truncation(cell_size, fine_voxel, True, options))
            cells, values = _close_band(cells[crossing], values[crossing], n, finest)
            break
        near = values.abs().min(dim=1).values < options.band * diagonal
        parents = cells[crossing | near]
        # Split each parent into 8: its 3x3x3 lattice on the next level's grid, evaluated once per point.
        n, cell_size = 2 * (n - 1) + 1, cell_size / 2
        points = 2 * parents[:, None, :] + _CHILD.to(device)  # (M, 27, 3)
        truncation = _truncation(cell_size, fine_voxel, level + 1 == levels, options)
        lattice_values = _values_at(points, n, functools.partial(evaluate, truncation=truncation))  # (M, 27)
        child = _CORNER.to(device)
        cells = (2 * parents[:, None, :] + child[None]).reshape(-1, 3)  # (8M, 3)
        # Corner c of child k sits at lattice offset child[k] + corner[c].
        offsets = child[:, None, :] + _CORNER.to(device)[None]  # (8, 8, 3)
        index = (offsets[..., 0] * 9 + offsets[..., 1] * 3 + offsets[..., 2]).reshape(-1)  # (64,)
        values = lattice_values[:, index].reshape(-1, 8)
    if progress:
        progress(1.0)
    vertices, faces = marching_cubes_cells(cells, -values, (n, n, n))
    if faces.shape[0] == 0:
        raise MeshError("no surface: the views' depth maps and masks leave nothing in common; check the cameras")
    return Mesh(vertices * fine_voxel - 1.0, faces)


# The 6 faces of a cell: the corners on it (in `CORNERS` order) and the step to the neighbour across it.
_FACES = [
    ([c for c in range(8) if CORNERS[c][axis] == side], tuple((2 * side - 1) * (a == axis) for a in range(3)))
    for axis in range(3)
    for side in (0, 1)
]


def _close_band(cells: Tensor, values: Tensor, n: int, evaluate: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """Crossing cells (M, 3) with their corner values (M, 8) on a grid of n points per side -> the same plus
    every cell the surface continues into: a face with corners on both sides has its neighbour across it
    added (evaluated, repeatedly), so the mesh has no holes where the coarser levels missed a cell."""
    while True:
        flat = (cells[:, 0] * n + cells[:, 1]) * n + cells[:, 2]
        wanted = []
        for corners, step in _FACES:
            face = values[:, corners] > 0
            mixed = face.any(dim=1) & ~face.all(dim=1)
            wanted.append(cells[mixed] + torch.tensor(step, device=cells.device))
        candidates = torch.cat(wanted)
        candidates = candidates[((candidates >= 0) & (candidates < n - 1)).all(dim=1)]
        ids = torch.unique((candidates[:, 0] * n + candidates[:, 1]) * n + candidates[:, 2])
        new = ids[~torch.isin(ids, flat)]
        if len(new) == 0:
            return cells, values
        added = torch.stack([new // (n * n), new // n % n, new % n], dim=-1)
        added_values = _values_at(added[:, None, :] + _CORNER.to(cells.device), n, evaluate)
        crossing = (added_values > 0).any(dim=1) & (added_values <= 0).any(dim=1)
        cells = torch.cat([cells, added[crossing]])
        values = torch.cat([values, added_values[crossing]])


def _truncation(cell_size: float, fine_voxel: float, finest: bool, options: FusionOptions) -> float:
    """The truncation of a level's queries: on the finest level the options' (it decides where the surface
    is); above it wide enough that the cells near the surface read as near."""
    fine = options.truncation * fine_voxel
    return fine if finest else max(fine, 2 * options.band * cell_size * math.sqrt(3))


def _values_at(grid_points: Tensor, n: int, evaluate: Callable[[Tensor], Tensor]) -> Tensor:
    """grid_points (M, K, 3) long on a grid of n points per side over [-1, 1]^3 -> the field there (M, K),
    each distinct point evaluated once."""
    flat = (grid_points[..., 0] * n + grid_points[..., 1]) * n + grid_points[..., 2]
    unique, inverse = torch.unique(flat.reshape(-1), return_inverse=True)
    ijk = torch.stack([unique // (n * n), unique // n % n, unique % n], dim=-1)
    world = ijk.float() * (2.0 / (n - 1)) - 1.0
    return evaluate(world)[inverse].reshape(flat.shape)
