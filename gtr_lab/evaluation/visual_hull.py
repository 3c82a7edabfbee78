"""A learning-free baseline: the visual hull carved from the input masks, coloured from the input views.

Shape: a grid over [-1, 1]^3 keeps the points that every view sees inside its mask (points outside a view's
image count as background); the soft minimum of the masks is meshed at level 0.5 by marching cubes.
Colour: each vertex takes the average of the input pixels it projects to, over the views that see it
(not hidden behind the hull itself, judged with a z-buffer), weighted by how squarely the view faces it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gtr_backend.mesh import Mesh, grid_points, sdf_to_mesh
from gtr_backend.render.mesh_render import seen_surface
from gtr_backend.render.raster import Rasterizer, TorchRasterizer, clip_to_pixels, project, sample_images
from gtr_backend.views.viewset import ViewSet


def _pixels(points: Tensor, views: ViewSet) -> tuple[Tensor, Tensor]:
    """World points (P, 3) -> pixel coordinates (N, P, 2) and camera depth (N, P) in each view."""
    clip = project(points, views.intrinsics, views.c2w, views.height, views.width)
    return clip_to_pixels(clip, views.height, views.width), clip[..., 3]


def visual_hull(
    views: ViewSet, resolution: int = 96, rasterizer: Rasterizer | None = None, chunk_points: int = 1 << 18
) -> Mesh:
    """The vertex-coloured visual hull of `views` (world frame)."""
    rasterizer = rasterizer or TorchRasterizer()
    points = grid_points(resolution, views.device).reshape(-1, 3)
    occupancy = []
    for i in range(0, points.shape[0], chunk_points):
        pixels, depth = _pixels(points[i : i + chunk_points], views)
        masks = sample_images(views.mask, pixels)[..., 0]  # (N, P)
        masks = torch.where(depth > 0, masks, torch.zeros_like(masks))
        occupancy.append(masks.min(dim=0).values)
    soft = torch.cat(occupancy).reshape(resolution, resolution, resolution)
    mesh = sdf_to_mesh(0.5 - soft)
    return Mesh(mesh.vertices, mesh.faces, vertex_colors=project_colors(mesh, views, rasterizer))


def project_colors(mesh: Mesh, views: ViewSet, rasterizer: Rasterizer | None = None) -> Tensor:
    """(V, 3) vertex colours averaged from the views that see each vertex; unseen vertices get the mean."""
    rasterizer = rasterizer or TorchRasterizer()
    vertices = mesh.vertices.float()
    pixels, depth = _pixels(vertices, views)  # (N, V, 2), (N, V)
    surface = seen_surface(mesh, views.intrinsics, views.c2w, views.height, views.width, rasterizer).depth
    front = sample_images(surface[:, None].nan_to_num(posinf=1e6), pixels)[..., 0]
    visible = depth <= front + 0.02 * depth  # not hidden behind the hull
    to_camera = F.normalize(views.c2w[:, None, :3, 3] - vertices[None], dim=-1)
    facing = (mesh.vertex_normals()[None] * to_camera).sum(-1).clamp_min(0)
    weight = facing * visible * (sample_images(views.mask, pixels)[..., 0] > 0.5)
    colours = sample_images(views.rgb, pixels)  # (N, V, 3)
    total = weight.sum(0)
    mean = (colours * weight[..., None]).sum(0) / total.clamp_min(1e-8)[:, None]
    fallback = mean[total > 0].mean(0) if bool((total > 0).any()) else torch.full((3,), 0.5)
    return torch.where((total > 0)[:, None], mean, fallback).clamp(0, 1)
