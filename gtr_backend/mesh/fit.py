"""Geometry that agrees with the input views: the network's density reconciled with the input masks.

Carving and filling (`carve_and_fill`), on the marching-cubes grid of `resolution`^3 points over [-1, 1]^3:

    masks   -> silhouette cones -> visual hull h (positive inside every cone)
    density -> occupancy (queried only in and just around the hull) -> signed distance n, lightly blurred
    snap    along each view's ray, where the hull's front is seen squarely and the network's front lies less
            than `snap` behind it, the stretch between them is added: the network's dents close up to the
            hull. `snap` defaults to the network's own measured error (how far its silhouettes stray from the
            masks, times `snap_factor`): a poor network is overruled where a view sees, a good one is trusted.
            Where the network is sure the space is empty (density below `empty_ratio` of the surface level),
            nothing is added: a concavity the silhouettes cannot show (a bowl's inside) stays open.
    carve   s = min(h, max(n, snap)): nothing sticks out past any mask. Where no view sees the hull squarely
            (the underside of an object seen from above, the inside of a concavity) the network's shape stays:
            no visual-hull keel.
    depth   views that know their depth carve the space in front of every surface they see (`depth_hull`); they
            then give the shape themselves, and the network's density is not queried.
    fill    the mask pixels that the surface of s still misses (a thin plate or rod the network lost) get their
            ray filled near where it enters the hull (`fill_depth`), cut by the hull; sealed hollows close.

Surface fit (`fit_surface`), on the mesh after simplification: vertices move along their normals so that the anti-
aliased silhouettes match the masks, the rendered depth matches the views' depth where they know it, two views that
see the same surface point see the same colour (photometric term, away from outlines and only where both views face
the surface; each view is compared with its `photo_neighbours` nearest views, so the cost grows linearly with the
number of views), and the mean curvature varies smoothly (fairness that removes terraces and wobble without
shrinking the shape).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import metrics
from ..render.mesh_render import seen_surface
from ..render.raster import Fragments, Rasterizer, TorchRasterizer, clip_to_pixels, project, sample_images
from ..views.viewset import ViewSet
from .distance import image_signed_distance, signed_distance
from .extract import DENSITY_LEVEL, DensityFn, McBackend, MeshError, density_grid, grid_points, level_set_mesh
from .mesh import Mesh
from .silhouette import SilhouetteCones, depth_hull

Progress = Callable[[float], None]


@dataclass(frozen=True)
class CarveOptions:
    # World units: a network surface at most this far behind a squarely seen hull moves onto it. None: the
    # network's measured error (`snap_factor` times its silhouettes' mean distance from the masks), clamped.
    snap: float | None = None
    snap_factor: float = 8.0
    max_snap: float = 0.3
    margin: float = 0.08  # world units: the network is also queried this far outside the hull
    empty_ratio: float = 0.1  # density below this share of the surface level: the network is sure it is empty
    fill_rounds: int = 1  # passes that add what the masks show but the surface misses
    fill_depth: float = 0.06  # world units: how deep behind the hull's front a missed ray is filled
    smooth: float = 0.75  # Gaussian sigma (voxels) applied to the network's part of the field
    chunk_points: int = 1 << 18


def gaussian_blur(tensor: Tensor, sigma: float, dims: int) -> Tensor:
    """Separable Gaussian blur (replicate padding) of the last `dims` (2 or 3) axes of (X, Y, Z) or
    (N, C, H, W); sigma in cells."""
    if sigma <= 0:
        return tensor
    radius = max(1, math.ceil(2.5 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=tensor.dtype, device=tensor.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = tensor[None, None] if dims == 3 else tensor
    channels = out.shape[1]
    conv = F.conv3d if dims == 3 else F.conv2d
    for axis in range(dims):
        shape = [channels, 1] + [1] * dims
        shape[2 + axis] = kernel.numel()
        pad = [0, 0] * dims
        pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = radius
        out = conv(
            F.pad(out, pad, mode="replicate"),
            kernel.reshape(1, 1, -1).expand(channels, 1, -1).reshape(shape),
            groups=channels,
        )
    return out[0, 0] if dims == 3 else out


def _erode(masks: Tensor) -> Tensor:
    """(N, H, W) bool -> the pixels whose whole 3x3 neighbourhood is in the mask."""
    return -F.max_pool2d(-masks[:, None].float(), 3, 1, 1)[:, 0] > 0.5


def grid_mesh(field: Tensor, backend: McBackend = "auto") -> Mesh:
    """Mesh of the zero level set of a (R, R, R) field on `grid_points` (positive inside), world frame."""
    return level_set_mesh(-field, backend)


def coverage(mesh: Mesh, views: ViewSet, rasterizer: Rasterizer) -> Tensor:
    """(N, H, W) bool: the pixels of each view the mesh covers."""
    if mesh.num_faces == 0:
        return torch.zeros((views.num_views, views.height, views.width), dtype=torch.bool, device=views.device)
    clip = project(mesh.vertices.float(), views.intrinsics, views.c2w, views.height, views.width)
    return rasterizer.rasterize(clip, mesh.faces, views.height, views.width).mask


def mask_iou(mesh: Mesh, views: ViewSet, rasterizer: Rasterizer | None = None) -> Tensor:
    """(N,) IoU between the mesh's coverage and each view's mask (at 1/2), at the views' resolution."""
    return metrics.mask_iou(coverage(mesh, views, rasterizer or TorchRasterizer()), views.foreground())


@dataclass(frozen=True)
class DepthMaps:
    """What each view sees of a surface: depth (N, H, W) of the nearest surface point (inf where none) and
    whether it is seen squarely enough (N, H, W) bool (|cos| of the view angle at least `min_facing`)."""

    depth: Tensor
    squarely: Tensor

    @classmethod
    def of(cls, surface: Mesh, views: ViewSet, rasterizer: Rasterizer, min_facing: float = 0.3) -> DepthMaps:
        seen = seen_surface(surface, views.intrinsics, views.c2w, views.height, views.width, rasterizer)
        fragments = seen.fragments
        if surface.num_faces == 0:
            return cls(seen.depth, fragments.mask)
        normals = F.normalize(surface.face_normals(), dim=-1)[fragments.triangle_id.clamp_min(0)]
        seen_at = rasterizer.interpolate(surface.vertices.float(), fragments, surface.faces)
        facing = (normals * F.normalize(views.c2w[:, None, None, :3, 3] - seen_at, dim=-1)).sum(-1).abs()
        return cls(seen.depth, fragments.mask & (facing >= min_facing))


def _look_up(maps: Tensor, points: Tensor, views: ViewSet) -> tuple[Tensor, Tensor]:
    """maps (N, C, H, W), world points (P, 3) -> the maps at each point's pixel (N, C, P) (nearest; border
    values outside the image) and the points' camera depths (N, P)."""
    clip = project(points, views.intrinsics, views.c2w, views.height, views.width)
    values = sample_images(maps, clip_to_pixels(clip, views.height, views.width), "nearest", "border")
    return values.transpose(1, 2), clip[..., 3]


def silhouette_error(mesh: Mesh, views: ViewSet, rasterizer: Rasterizer) -> float:
    """How far (world units) a mesh's outline lies from the masks' on average: the pixels where its coverage
    and the mask disagree, over the length of the mask's outline, times depth / focal length; mean of views."""
    masks = views.foreground()
    disagree = (coverage(mesh, views, rasterizer) ^ masks).flatten(1).sum(1).float()
    outline = (masks & ~_erode(masks)).flatten(1).sum(1).float().clamp_min(1)
    depth = views.c2w[:, :3, 3].norm(dim=-1)  # about the distance to the object
    focal = views.intrinsics[:, :2].mean(dim=1)
    return float((disagree / outline * depth / focal).mean())


@dataclass
class CarvedGeometry:
    mesh: Mesh
    snap: float  # how far behind the seen hull a network surface was moved onto it (world units); inf when the
    # network's shape was not used (views with depth give the shape themselves)
    inside: Tensor  # (R, R, R) the fused field the mesh is the zero level set of, positive inside (lightly
    # blurred when the views gave depth)


def carve_and_fill(
    density: DensityFn,
    views: ViewSet,
    resolution: int,
    options: CarveOptions = CarveOptions(),
    rasterizer: Rasterizer | None = None,
    level: float = DENSITY_LEVEL,
    backend: McBackend = "auto",
    progress: Progress | None = None,
) -> CarvedGeometry:
    """The fused field and mesh of the module docstring. `views` and the density live on the same device;
    `backend` is the marching cubes to use, `progress` is told the fraction done (and may raise to cancel)."""

    def step(fraction: float) -> None:
        if progress:
            progress(fraction)

    rasterizer = rasterizer or TorchRasterizer()
    device = views.device
    voxel = 2.0 / (resolution - 1)
    nearest = float(views.c2w[:, :3, 3].norm(dim=-1).min()) - 1.0  # the closest the object gets to a camera
    focal = float(views.intrinsics[:, :2].max())
    reach = options.fill_depth + 3 * voxel  # how far (world) the fields must be exact around a surface
    band_px = int(min(96, max(8, math.ceil(reach * focal / max(nearest, 0.1)))))
    cones = SilhouetteCones.of_masks(views, band_px)

    points = grid_points(resolution, device).reshape(-1, 3)
    hull = torch.cat(
        [cones.hull(points[i : i + options.chunk_points]) for i in range(0, len(points), options.chunk_points)]
    )
    hull = hull.reshape(resolution, resolution, resolution)
    if views.depth is not None:  # what the depth maps show as empty in front of the surfaces they see
        seen = torch.cat(
            [
                depth_hull(points[i : i + options.chunk_points], views, reach)
                for i in range(0, len(points), options.chunk_points)
            ]
        )
        hull = torch.minimum(hull, seen.reshape(hull.shape))
        # The views' masks and depth give the shape where they look (every side, for a capture all round);
        # what none of them sees stays as they bound it, for the clean stage's membrane.
        hull = torch.where(enclosed(hull > 0), torch.full_like(hull, 0.5 * voxel), hull)
        mesh = grid_mesh(hull, backend)
        step(1.0)
        if mesh.num_faces == 0:
            raise MeshError("no surface: the views' masks and depth leave nothing in common; check the cameras")
        # The field keeps the depth maps' pixel steps where the views meet; the normal map is baked from it
        # lightly blurred (the mesh itself is meshed sharp: a blur would round its edges).
        return CarvedGeometry(mesh, math.inf, gaussian_blur(hull, 2 * options.smooth, dims=3))
    step(0.15)

    # The network's occupancy, queried only inside the hull and a margin around it (where it shows how far
    # the network's shape strays past the masks).
    near = hull > -options.margin
    with torch.no_grad():
        densities = density_grid(density, resolution, device, options.chunk_points, where=near, level=level)
        occupied = densities >= level
    if not bool(occupied.any()):
        raise MeshError(
            "no surface: the density never reaches the surface level anywhere inside the views' visual hull, so "
            "there is nothing to mesh. Check that the views show the object with correct masks and cameras, "
            "and that the weights suit them"
        )

    step(0.35)
    band_vox = math.ceil(reach / voxel) + 1
    network = gaussian_blur(signed_distance(occupied, band_vox) * voxel, options.smooth, dims=3)
    snap = options.snap
    if snap is None:  # the network's own error, read off how far its silhouettes stray from the masks
        snap = min(
            options.max_snap,
            max(voxel, options.snap_factor * silhouette_error(grid_mesh(network, backend), views, rasterizer)),
        )

    # Per view: the hull's front surface (seen squarely, else it says nothing) and the network's front surface.
    # A dent is a stretch of a view's ray between the two that is shorter than `snap`: filled up to the hull.
    # `hidden` (N, R, R, R): how far behind the squarely seen front each point lies (0 in front of the hull,
    # inf behind a surface seen only at a grazing angle: the keel under an object seen from above).
    hull_maps = DepthMaps.of(grid_mesh(hull, backend), views, rasterizer)
    network_depth = DepthMaps.of(grid_mesh(torch.minimum(hull, network), backend), views, rasterizer).depth
    inf = torch.full_like(hull_maps.depth, float("inf"))
    front = torch.where(hull_maps.squarely, hull_maps.depth, inf)
    gap = torch.where(hull_maps.squarely & torch.isfinite(network_depth), network_depth - front, inf)
    maps = torch.stack([hull_maps.depth, front, gap], dim=1)  # (N, 3, H, W)
    hidden_parts, snapped_parts = [], []
    for i in range(0, len(points), options.chunk_points):
        values, z = _look_up(maps, points[i : i + options.chunk_points], views)
        surface_at, front_at, gap_at = values.unbind(1)
        behind = torch.where(z >= front_at, z - front_at, torch.full_like(z, float("inf")))
        hidden_parts.append(torch.where(z < surface_at, torch.zeros_like(z), behind))
        inside_dent = torch.minimum(front_at + gap_at - z, snap - gap_at)  # > 0: inside a shallow dent
        snapped_parts.append(torch.nan_to_num(inside_dent, nan=-1.0, neginf=-1.0).max(dim=0).values)
    hidden = torch.cat(hidden_parts, dim=1).reshape(-1, *hull.shape)  # (N, R, R, R)
    snapped = torch.cat(snapped_parts).reshape(hull.shape)
    # Where the network is sure the space is empty (density far below the surface level), a dent is a real
    # concavity (a bowl's inside, the gap between wheels) that the silhouettes cannot show: it is not filled.
    empty = near & (densities < options.empty_ratio * level)
    snapped = torch.where(empty, torch.full_like(snapped, -1.0), snapped)
    network = torch.maximum(network, snapped)
    field = torch.minimum(hull, network)
    step(0.7)

    for _ in range(options.fill_rounds):
        missed = views.foreground() & ~coverage(grid_mesh(field, backend), views, rasterizer)
        # An opening drops slivers a pixel or two wide along the outline (the grid's resolution, not a lost part).
        missed = ~_erode(~_erode(missed))
        if not bool(missed.any()):
            break
        fill_cones = SilhouetteCones.of_regions(missed, views, band_px)
        # Each missed pixel's ray is filled only near where it enters the hull (a shell `fill_depth` deep),
        # so a missed rim never grows a keel out of the hull's hidden part.
        fill = torch.cat(
            [
                fill_cones.world_distance(points[i : i + options.chunk_points])
                for i in range(0, len(points), options.chunk_points)
            ],
            dim=1,
        ).reshape(-1, *hull.shape)
        fill = torch.minimum(fill, options.fill_depth - hidden).max(dim=0).values
        network = torch.maximum(network, fill)
        field = torch.minimum(hull, network)
    cavity = enclosed(field > 0)
    field = torch.where(cavity, torch.full_like(field, 0.5 * voxel), field)
    mesh = grid_mesh(field, backend)
    step(1.0)
    if mesh.num_faces == 0:
        raise MeshError(
            "no surface: the network's shape and the views' masks have nothing in common (the density reaches "
            "the surface level only outside what the masks allow). Check the cameras and the masks"
        )
    return CarvedGeometry(mesh, snap, field)


def enclosed(solid: Tensor) -> Tensor:
    """(X, Y, Z) bool: empty cells that no axis-aligned line reaches from outside the grid without crossing a
    solid cell: hollows inside the solid (a fill that made a shell). An opening along an axis (a mug's inside,
    a torus's hole) is reached; one that turns or slants steeply (a bent spout) would be closed too."""
    reached = torch.zeros_like(solid)
    for dim in range(3):
        for flip in (False, True):
            ahead = solid.flip(dim) if flip else solid
            blocked = ahead.to(torch.uint8).cummax(dim=dim).values.bool()
            reached |= ~(blocked.flip(dim) if flip else blocked)
    return ~solid & ~reached


@dataclass(frozen=True)
class FitOptions:
    """The differentiable surface fit after carving (vertex offsets optimised with Adam)."""

    voxel: float  # the grid spacing the mesh came from (world units): sets the step size
    steps: int = 20
    lr_voxels: float = 0.1  # Adam's step, in voxels
    lr_voxels_with_depth: float = 0.25  # ... when the views know their depth: a firm target, a longer stride
    silhouette: float = 100.0  # weight of mean (coverage - mask)^2 at the views' resolution
    photometric: float = 1.0  # weight of |view i's pixel - view j's colour at the same surface point|
    smooth: float = 20.0  # weight of how the mean curvature varies between neighbours (fairness)
    anchor: float = 0.01  # weight of the offsets from the start (voxel units)
    depth: float = 1.0  # weight of the Huber distance (voxels) between rendered and known depth, where known
    photo_pixels: int = 8192  # pixels per view sampled for the photometric term each step
    min_facing: float = 0.3  # both views must see a point at least this squarely (cosine) to compare colours
    photo_neighbours: int = 3  # each view's colours are compared with this many nearest views (by direction)


def nearest_views(c2w: Tensor, count: int) -> list[list[int]]:
    """For each camera (N, 4, 4), the indices of the `count` others whose directions from the origin (the
    object's centre) are closest to its own: the views most likely to see the same surface."""
    directions = F.normalize(c2w[:, :3, 3], dim=-1)
    similarity = directions @ directions.T
    similarity.fill_diagonal_(-2.0)
    keep = min(count, len(c2w) - 1)
    return similarity.topk(keep, dim=1).indices.tolist() if keep > 0 else [[] for _ in range(len(c2w))]


def _laplacian(vertices: Tensor, faces: Tensor) -> Tensor:
    """(V, 3): each vertex minus the mean of its edge neighbours (uniform weights)."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.cat([edges, edges.flip(1)])
    total = torch.zeros_like(vertices).index_add(0, edges[:, 0], vertices[edges[:, 1]])
    count = torch.zeros(vertices.shape[0], device=vertices.device).index_add(
        0, edges[:, 0], torch.ones(edges.shape[0], device=vertices.device)
    )
    return vertices - total / count.clamp_min(1)[:, None]


def fit_surface(
    mesh: Mesh,
    views: ViewSet,
    options: FitOptions,
    rasterizer: Rasterizer | None = None,
    progress: Progress | None = None,
) -> Mesh:
    """Move the vertices along their normals so the mesh's silhouettes match the masks, what two views see of
    the same surface point agrees in colour, and the surface stays smooth. Topology is kept; moving along the
    normal only (never sideways) keeps thin parts from being pulled apart. World frame in and out."""
    fit = _SurfaceFit(mesh, views, options, rasterizer or TorchRasterizer())
    offset = torch.zeros((mesh.num_vertices, 1), device=mesh.vertices.device, requires_grad=True)
    stride = options.lr_voxels if views.depth is None else options.lr_voxels_with_depth
    optimizer = torch.optim.Adam([offset], lr=stride * options.voxel)
    with torch.enable_grad():  # also when the caller runs under no_grad
        for step in range(options.steps):
            loss = fit.loss(offset)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if progress:
                progress((step + 1) / options.steps)
    return Mesh(fit.moved(offset).detach(), mesh.faces)


class _SurfaceFit:
    """What the surface fit's loss reads, prepared once: the start, its normals, the views' masks, their
    slightly blurred colours (a smoother photometric landscape) and the pixels well inside the masks."""

    def __init__(self, mesh: Mesh, views: ViewSet, options: FitOptions, rasterizer: Rasterizer) -> None:
        self.start = mesh.vertices.detach().float()
        self.faces = mesh.faces
        self.normals = mesh.vertex_normals().detach().float()
        self.views, self.options, self.rasterizer = views, options, rasterizer
        self.masks = views.mask.permute(0, 2, 3, 1)  # (N, H, W, 1)
        self.images = gaussian_blur(views.rgb, 1.0, dims=2)
        # The photometric term only reads pixels well inside the masks: at outlines (and across thin parts,
        # which are all outline) colours mix with the background, and the silhouette term decides there.
        self.interior = image_signed_distance(views.foreground(), 4) >= 3
        self.generator = torch.Generator(device="cpu").manual_seed(0)
        self.neighbours = nearest_views(views.c2w, options.photo_neighbours)

    def moved(self, offset: Tensor) -> Tensor:
        return self.start + offset * self.normals

    def loss(self, offset: Tensor) -> Tensor:
        options, views, faces = self.options, self.views, self.faces
        vertices = self.moved(offset)
        clip = project(vertices, views.intrinsics, views.c2w, views.height, views.width)
        fragments = self.rasterizer.rasterize(clip, faces, views.height, views.width)
        soft = self.rasterizer.antialias(fragments.mask[..., None].float(), fragments, clip, faces)
        loss = options.silhouette * (soft - self.masks).square().mean()
        if options.photometric > 0 and views.num_views > 1:
            loss = loss + options.photometric * self._photometric(vertices, fragments, clip)
        if options.depth > 0 and views.depth is not None:
            rendered = self.rasterizer.interpolate(clip[..., 3:].contiguous(), fragments, faces)[..., 0]
            target = views.depth[:, 0]
            known = fragments.mask & (target > 0)
            if bool(known.any()):
                error = (rendered[known] - target[known]) / options.voxel
                loss = loss + options.depth * F.huber_loss(error, torch.zeros_like(error))
        if options.smooth > 0:
            # Fairness without shrinkage: the normal part of the Laplacian is the mean curvature (times the edge
            # length squared); penalising how it varies between neighbours flattens terraces and wobbles but
            # leaves a sphere, a cylinder or a plane as they are.
            curvature = (_laplacian(vertices, faces) * self.normals).sum(-1, keepdim=True) / options.voxel
            loss = loss + options.smooth * _laplacian(curvature, faces).square().mean()
        if options.anchor > 0:
            loss = loss + options.anchor * (offset / options.voxel).square().mean()
        return loss

    def _photometric(self, vertices: Tensor, fragments: Fragments, clip: Tensor) -> Tensor:
        """Mean |I_i(p) - I_j(pi_j(X(p)))| over sampled pixels p inside view i's mask (away from its outline) and
        the other views j that see the surface point X(p) squarely enough (depth test against the current mesh,
        facing ratio at least `min_facing` in both); differentiable in the vertices."""
        views, options, faces, rasterizer = self.views, self.options, self.faces, self.rasterizer
        images, interior = self.images, self.interior
        n, height, width = views.num_views, views.height, views.width
        focal = views.intrinsics[:, :2].mean(dim=1)
        points = rasterizer.interpolate(vertices, fragments, faces)  # (N, H, W, 3)
        depth = rasterizer.interpolate(clip[..., 3:].contiguous(), fragments, faces)[..., 0].detach()
        depth = torch.where(fragments.mask, depth, torch.full_like(depth, 1e6))
        face_normals = F.normalize(Mesh(vertices.detach(), faces).face_normals(), dim=-1)
        usable = fragments.mask & interior
        total = vertices.new_zeros(())
        pairs = 0
        for i in range(n):
            index = torch.nonzero(usable[i].reshape(-1)).squeeze(1)
            if index.numel() == 0:
                continue
            if index.numel() > options.photo_pixels:
                pick = torch.randperm(index.numel(), generator=self.generator)[: options.photo_pixels]
                index = index[pick.to(index.device)]
            x = points[i].reshape(-1, 3)[index]  # (P, 3)
            normal = face_normals[fragments.triangle_id[i].reshape(-1)[index]]  # (P, 3)
            colour = images[i].reshape(3, -1)[:, index].T  # (P, 3)
            others = self.neighbours[i]
            pclip = project(x, views.intrinsics[others], views.c2w[others], height, width)  # (M, P, 4)
            pixels = clip_to_pixels(pclip, height, width)  # (M, P, 2)
            seen = sample_images(images[others], pixels, "bilinear", "border")  # (M, P, 3)
            front = sample_images(depth[others, None], pixels.detach(), "nearest", "border")[..., 0]
            inner = sample_images(interior[others, None].float(), pixels.detach(), "nearest", "zeros")[..., 0]
            z = pclip[..., 3].detach()
            to_j = F.normalize(views.c2w[others, None, :3, 3] - x.detach()[None], dim=-1)
            to_i = F.normalize(views.c2w[i, :3, 3] - x.detach(), dim=-1)
            facing_j = (to_j * normal[None]).sum(-1)  # (M, P)
            facing_i = (to_i * normal).sum(-1)[None]  # (1, P)
            squarely = (facing_j >= options.min_facing) & (facing_i >= options.min_facing)
            visible = (z <= front + 2.0 * z / focal[others, None]) & (inner > 0.5)
            weight = (visible & squarely).float()
            if weight.sum() > 0:
                difference = (seen - colour[None]).abs().sum(-1)  # (M, P)
                total = total + (difference * weight).sum() / weight.sum()
                pairs += 1
        return total / max(pairs, 1)
