"""Synthetic captures for the tests: a mesh seen from cameras all round with what Render Selected records beside
each image (its depth where a pixel is wholly on the object, and optionally a material pass), in the backend
frame. The cameras are Render Selected's rig: 4 on the orbit, one above, one below, then rings high and low."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import trimesh
from torch import Tensor

from gtr_backend.mesh import Mesh
from gtr_backend.render.mesh_render import seen_surface
from gtr_backend.render.raster import TorchRasterizer, project
from gtr_backend.views import ViewSet
from gtr_backend.views.cameras import intrinsics_from_fov, orbit_poses
from gtr_lab.synthetic.objects import ProceduralObject, render_object

MaterialFn = Callable[[Tensor], Tensor]  # world points (P, 3) -> roughness, metallic (P, 2)


def rig(count: int) -> list[tuple[float, float]]:
    """(azimuth, elevation) of `count` cameras as Render Selected places them (`capture.capture_rig`)."""
    cameras = [(a, 20.0) for a in (0.0, 90.0, 180.0, 270.0)][:count]
    extra = count - len(cameras)
    if extra >= 2:
        cameras += [(0.0, 88.0), (0.0, -88.0)]
        extra -= 2
    high = (extra + 1) // 2
    for ring, elevation in ((high, 50.0), (extra - high, -25.0)):
        cameras += [(45.0 + 360.0 * i / ring, elevation) for i in range(ring)]
    return cameras


def capture(
    mesh: Mesh,
    size: int = 256,
    count: int = 16,
    color: Callable[[Tensor], Tensor] | None = None,
    material: MaterialFn | None = None,
) -> ViewSet:
    """`count` views of `mesh` at `size` px with depth (and a material pass when `material` is given)."""
    cameras = rig(count)
    c2w = torch.stack([orbit_poses([a], e, 2.7)[0] for a, e in cameras]).float()
    k = intrinsics_from_fov(40.0, size, size).float().expand(count, 4).clone()
    colour = color or (lambda p: torch.full_like(p, 0.6))
    views = render_object(ProceduralObject(mesh, colour, "capture"), k, c2w, size, size)
    seen = seen_surface(mesh, k, c2w, size, size)
    solid = views.mask[:, 0] > 0.99
    depth = torch.where(torch.isfinite(seen.depth) & solid, seen.depth, torch.zeros_like(seen.depth))
    passes = None
    if material is not None:
        rasterizer = TorchRasterizer()
        clip = project(mesh.vertices, k, c2w, size, size)
        fragments = rasterizer.rasterize(clip, mesh.faces, size, size)
        points = rasterizer.interpolate(mesh.vertices, fragments, mesh.faces)
        values = material(points.reshape(-1, 3)).reshape(*points.shape[:3], 2).permute(0, 3, 1, 2)
        known = fragments.mask[:, None].float()
        passes = torch.cat([values * known, known], dim=1)
    return ViewSet.from_tensors(views.rgb, views.mask, k, c2w, depth=depth[:, None], material=passes)


def box(extents: tuple[float, float, float] = (0.9, 0.9, 0.9), angles_deg: tuple[float, float] = (30.0, 20.0)) -> Mesh:
    """A box turned about two axes (X then Y), as a mesh of 12 triangles, backend frame."""
    shape = trimesh.creation.box(extents=extents)
    turn = trimesh.transformations.euler_matrix(math.radians(angles_deg[0]), math.radians(angles_deg[1]), 0.0)
    shape.apply_transform(turn)
    return Mesh(torch.tensor(shape.vertices, dtype=torch.float32), torch.tensor(shape.faces))


def box_turn(angles_deg: tuple[float, float] = (30.0, 20.0)) -> Tensor:
    """(3, 3) the rotation `box` turns the box by."""
    turn = trimesh.transformations.euler_matrix(math.radians(angles_deg[0]), math.radians(angles_deg[1]), 0.0)
    return torch.tensor(turn[:3, :3], dtype=torch.float32)


def sphere(radius: float = 0.75, subdivisions: int = 5) -> Mesh:
    shape = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(torch.tensor(shape.vertices, dtype=torch.float32), torch.tensor(shape.faces))


def box_errors(
    mesh: Mesh, extents: tuple[float, float, float], turn: Tensor, samples: int = 50000
) -> tuple[Tensor, Tensor]:
    """For surface points sampled on `mesh` (area-weighted): their distance to the true turned box (P,) and the
    angle (degrees) between their face's normal and the normal of the box face nearest them (P,)."""
    tm = trimesh.Trimesh(mesh.vertices.detach().numpy(), mesh.faces.numpy(), process=False)
    points, face = trimesh.sample.sample_surface(tm, samples, seed=0)
    local = torch.tensor(points, dtype=torch.float32) @ turn  # (turn^T p)
    half = torch.tensor(extents) / 2
    q = local.abs() - half
    distance = (q.clamp_min(0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0)).abs()
    normal = torch.tensor(tm.face_normals[face], dtype=torch.float32) @ turn
    axis = (local.abs() / half).argmax(dim=-1)
    truth = torch.zeros_like(local)
    truth[torch.arange(len(local)), axis] = torch.sign(local[torch.arange(len(local)), axis])
    angle = torch.rad2deg(torch.arccos((normal * truth).sum(-1).clamp(-1, 1)))
    return distance, angle


def open_edges(faces: Tensor, vertices: Tensor | None = None) -> int:
    """How many edges of a mesh are not shared by exactly two faces (0 for a closed surface); with `vertices`,
    those at one position count as one (a mesh split along its UV seams)."""
    if vertices is not None:
        _, index = torch.unique(vertices, dim=0, return_inverse=True)
        faces = index[faces]
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    _, counts = torch.unique(edges, dim=0, return_counts=True)
    return int((counts != 2).sum())
