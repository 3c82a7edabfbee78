"""Procedural textured objects and their renders: ground truth for the example, tests and benchmarks.

A `ProceduralObject` is a mesh in the world frame (inside [-1, 1]^3, Y up) with a solid texture: a colour
function of the world position, so it needs no UVs and renders exactly with the project's rasterizer.
`render_object` turns it into a `ViewSet` (RGBA images and cameras), supersampled for soft, anti-aliased edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from torch import Tensor

from gtr_backend.contract import ORBIT_AZIMUTHS_DEG, ORBIT_DISTANCE, ORBIT_ELEVATION_DEG, ORBIT_FOV_DEG
from gtr_backend.mesh.mesh import Mesh
from gtr_backend.render.raster import Rasterizer, TorchRasterizer, project
from gtr_backend.views.cameras import intrinsics_from_fov, orbit_poses
from gtr_backend.views.viewset import ViewSet

ColorFn = Callable[[Tensor], Tensor]  # world points (P, 3) -> rgb (P, 3) in [0, 1]


@dataclass(frozen=True)
class ProceduralObject:
    mesh: Mesh
    color: ColorFn
    name: str = "object"


def merge_parts(parts: Sequence[trimesh.Trimesh]) -> Mesh:
    """One `Mesh` holding all the parts' triangles (overlapping parts are fine for rendering)."""
    vertices = np.concatenate([p.vertices for p in parts])
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)])
    return Mesh(torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces, dtype=torch.long))


def toy_object() -> ProceduralObject:
    """A squat striped vase with a checkered block on top and a ring handle: colour, stripes and checks."""
    body = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    body.apply_scale((0.55, 0.42, 0.55))
    body.apply_translation((0.0, -0.2, 0.0))
    block = trimesh.creation.box(extents=(0.5, 0.3, 0.5))
    block.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 8, (0, 1, 0)))
    block.apply_translation((0.0, 0.32, 0.0))
    handle = trimesh.creation.torus(major_radius=0.22, minor_radius=0.06, major_sections=48, minor_sections=16)
    handle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    handle.apply_translation((0.55, -0.15, 0.0))
    mesh = merge_parts([body, block, handle])

    def color(points: Tensor) -> Tensor:
        x, y, z = points.unbind(-1)
        stripes = 0.5 + 0.5 * torch.sin(y * 28.0)
        body_rgb = torch.stack([0.85 * stripes + 0.1, 0.35 + 0.3 * (1 - stripes), 0.2 + 0.1 * stripes], -1)
        checks = (torch.floor(x * 8) + torch.floor(z * 8) + torch.floor(y * 8)) % 2
        block_rgb = torch.stack([0.15 + 0.8 * checks, 0.3 + 0.6 * checks, 0.8 - 0.1 * checks], -1)
        handle_rgb = torch.stack([0.2 + 0.3 * (x - 0.3), 0.7 + 0.0 * x, 0.35 + 0.0 * x], -1).clamp(0, 1)
        on_block = y > 0.16
        on_handle = x > 0.555  # the body ends at x = 0.55
        rgb = torch.where(on_block[..., None], block_rgb, body_rgb)
        return torch.where((on_handle & ~on_block)[..., None], handle_rgb, rgb).clamp(0, 1)

    return ProceduralObject(mesh, color, "toy")


def render_object(
    obj: ProceduralObject,
    intrinsics: Tensor,
    c2w: Tensor,
    height: int,
    width: int,
    rasterizer: Rasterizer | None = None,
    supersample: int = 2,
    names: Sequence[str] | None = None,
) -> ViewSet:
    """Render `obj` from N cameras into a ViewSet (colour from its solid texture, mask from coverage)."""
    rasterizer = rasterizer or TorchRasterizer()
    s = supersample
    mesh = obj.mesh.to(intrinsics.device)
    clip = project(mesh.vertices, intrinsics.float() * s, c2w.float(), height * s, width * s)
    fragments = rasterizer.rasterize(clip, mesh.faces, height * s, width * s)
    points = rasterizer.interpolate(mesh.vertices, fragments, mesh.faces)
    coverage = fragments.mask[..., None].float()
    rgb = obj.color(points.reshape(-1, 3)).reshape(points.shape) * coverage
    premultiplied = F.avg_pool2d(rgb.permute(0, 3, 1, 2), s)
    mask = F.avg_pool2d(coverage.permute(0, 3, 1, 2), s)
    straight = torch.where(mask > 0, premultiplied / mask.clamp_min(1e-6), torch.ones_like(premultiplied))
    return ViewSet.from_tensors(straight.clamp(0, 1), mask, intrinsics, c2w, names)


def orbit_render(
    obj: ProceduralObject,
    azimuths_deg: Sequence[float] = ORBIT_AZIMUTHS_DEG,
    elevation_deg: float = ORBIT_ELEVATION_DEG,
    distance: float = ORBIT_DISTANCE,
    fov_deg: float = ORBIT_FOV_DEG,
    size: int = 512,
) -> ViewSet:
    """`obj` seen from cameras on an orbit (the orbit convention of `views.cameras`)."""
    n = len(azimuths_deg)
    c2w = orbit_poses(azimuths_deg, elevation_deg, distance).float()
    k = intrinsics_from_fov(fov_deg, size, size).float().expand(n, 4)
    return render_object(obj, k, c2w, size, size, names=[f"{obj.name}_az{a:g}" for a in azimuths_deg])
