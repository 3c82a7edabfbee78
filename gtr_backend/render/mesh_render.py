"""Rendering meshes (UV-textured, vertex-coloured, or plain) from OpenCV cameras with a `Rasterizer`.

Output images are channels-first like `ViewSet`: rgb (N, 3, H, W) composited over `background` (white by
default; None keeps it transparent, i.e. premultiplied), alpha (N, 1, H, W), depth (N, 1, H, W) = camera-space
z (0 on background), normals (N, 3, H, W) in the world frame, and the rasterizer's fragments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..mesh.mesh import Mesh
from .raster import Fragments, Rasterizer, TorchRasterizer, project


@dataclass(frozen=True)
class MeshRender:
    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    normals: Tensor
    fragments: Fragments


@dataclass(frozen=True)
class SeenSurface:
    """What N cameras see of a mesh: depth (N, H, W) camera z of the nearest surface point (inf where there is
    none), the rasterizer's fragments and the clip coordinates (N, V, 4) of the vertices."""

    depth: Tensor
    fragments: Fragments
    clip: Tensor


def seen_surface(
    mesh: Mesh, intrinsics: Tensor, c2w: Tensor, height: int, width: int, rasterizer: Rasterizer | None = None
) -> SeenSurface:
    """Rasterize `mesh` (world frame) from N OpenCV cameras; an empty mesh is seen nowhere."""
    rasterizer = rasterizer or TorchRasterizer()
    vertices = mesh.vertices.detach().float()
    clip = project(vertices, intrinsics.float(), c2w.float(), height, width)
    n = clip.shape[0]
    if mesh.num_faces == 0:
        empty = torch.full((n, height, width), -1, dtype=torch.long, device=vertices.device)
        fragments = Fragments(empty, torch.zeros((n, height, width, 3), device=vertices.device))
        return SeenSurface(torch.full((n, height, width), float("inf"), device=vertices.device), fragments, clip)
    fragments = rasterizer.rasterize(clip, mesh.faces, height, width)
    depth = rasterizer.interpolate(clip[..., 3:].contiguous(), fragments, mesh.faces)[..., 0]
    return SeenSurface(torch.where(fragments.mask, depth, torch.full_like(depth, float("inf"))), fragments, clip)


def sample_texture(texture: Tensor, uv: Tensor) -> Tensor:
    """texture (T, T', C) in [0, 1], image row 0 at the top; uv (..., 2) with v up -> (..., C), bilinear."""
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], dim=-1).reshape(1, -1, 1, 2)
    image = texture.permute(2, 0, 1)[None].to(uv.dtype)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, :, 0].T.reshape(*uv.shape[:-1], texture.shape[-1])


def sample_texture_mipmapped(texture: Tensor, uv: Tensor) -> Tensor:
    """`sample_texture` for uv (N, H, W, 2) of rendered pixels, read as a renderer with mipmaps reads it
    (trilinear): each pixel from the level of a box-filtered pyramid whose texels are about its own footprint,
    so a texture finer than the pixels averages over each pixel instead of aliasing. The footprint is how far uv
    moves to the next pixel (the smaller of the steps either side, so that a UV seam next to a pixel does not
    count), in texels: the geometric mean of the two image axes' steps (the footprint's area, so a surface seen
    at a grazing angle is not blurred along both axes by its long one)."""
    size = max(texture.shape[0], texture.shape[1])

    def step(axis: int) -> Tensor:  # (N, H, W): |d uv| to the neighbouring pixel along `axis`, in texels
        forward = (uv.diff(dim=axis, append=uv.narrow(axis, -1, 1))).norm(dim=-1)
        backward = (uv.diff(dim=axis, prepend=uv.narrow(axis, 0, 1))).norm(dim=-1)
        both = torch.minimum(forward, backward)
        return torch.where(both > 0, both, torch.maximum(forward, backward)) * size

    coarsest = (size - 1).bit_length()  # the level of one texel
    level = (step(1) * step(2)).clamp_min(1).log2().mul(0.5).clamp_max(coarsest)  # 0: the texture itself
    out = torch.zeros((*uv.shape[:-1], texture.shape[-1]), dtype=uv.dtype, device=uv.device)
    image = texture
    for k in range(math.ceil(float(level.max())) + 1):
        if k > 0:
            image = F.avg_pool2d(image.permute(2, 0, 1)[None], 2, ceil_mode=True)[0].permute(1, 2, 0)
        weight = (1 - (level - k).abs()).clamp_min(0)  # trilinear: the two levels either side of each pixel's
        read = weight > 0
        if bool(read.any()):
            out[read] += weight[read][:, None] * sample_texture(image, uv[read]).to(out.dtype)
    return out


def channels_first(image: Tensor) -> Tensor:
    return image.permute(0, 3, 1, 2)


def render_mesh(
    mesh: Mesh,
    intrinsics: Tensor,
    c2w: Tensor,
    height: int,
    width: int,
    rasterizer: Rasterizer | None = None,
    background: float | None = 1.0,
    antialias: bool = True,
    mipmaps: bool = False,
) -> MeshRender:
    """Render `mesh` from N cameras (intrinsics (N, 4), c2w (N, 4, 4)) at height x width.

    Colour comes from the texture (if the mesh has uv and texture), else the vertex colours, else a neutral
    grey shaded by the normals' facing ratio (a clay render). `mipmaps`: the texture is read trilinearly from
    its mipmaps (`sample_texture_mipmapped`) as a game engine or Blender reads it, not at one point per pixel.
    """
    rasterizer = rasterizer or TorchRasterizer()
    vertices = mesh.vertices.float()
    clip = project(vertices, intrinsics.float(), c2w.float(), height, width)
    fragments = rasterizer.rasterize(clip, mesh.faces, height, width)
    mask = fragments.mask[..., None].float()
    depth = rasterizer.interpolate(clip[..., 3:].contiguous(), fragments, mesh.faces)
    normals = rasterizer.interpolate(mesh.vertex_normals(), fragments, mesh.faces)
    normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    if mesh.uv is not None and mesh.texture is not None:
        uv = rasterizer.interpolate(mesh.uv.float(), fragments, mesh.faces)
        rgb = (sample_texture_mipmapped(mesh.texture, uv) if mipmaps else sample_texture(mesh.texture, uv)) * mask
    elif mesh.vertex_colors is not None:
        rgb = rasterizer.interpolate(mesh.vertex_colors.float(), fragments, mesh.faces)
    else:
        origins = c2w[:, None, None, :3, 3].float()
        points = rasterizer.interpolate(vertices, fragments, mesh.faces)
        view = F.normalize(origins - points, dim=-1)
        facing = (normals * view).sum(-1, keepdim=True).abs()
        rgb = ((0.25 + 0.6 * facing) * mask).expand(-1, -1, -1, 3)
    if antialias:
        rgb, mask = rasterizer.antialias(torch.cat([rgb, mask], dim=-1), fragments, clip, mesh.faces).split([3, 1], -1)
    if background is not None:
        rgb = rgb + (1 - mask) * background
    return MeshRender(
        channels_first(rgb), channels_first(mask), channels_first(depth), channels_first(normals), fragments
    )
