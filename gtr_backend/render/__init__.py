"""Rendering: NeRF volume rendering of triplane fields; mesh rasterization (PyTorch or nvdiffrast)."""

from .mesh_render import MeshRender, SeenSurface, render_mesh, sample_texture, seen_surface
from .raster import Fragments, Rasterizer, TorchRasterizer, get_rasterizer, project, uv_clip
from .volume import (
    FieldFn,
    VolumeOptions,
    VolumeRender,
    clip_rays_to_box,
    render_rays,
    render_triplane,
    render_views,
    triplane_field,
)

__all__ = [
    "FieldFn",
    "Fragments",
    "MeshRender",
    "Rasterizer",
    "SeenSurface",
    "TorchRasterizer",
    "VolumeOptions",
    "VolumeRender",
    "clip_rays_to_box",
    "get_rasterizer",
    "project",
    "render_mesh",
    "render_rays",
    "render_triplane",
    "render_views",
    "sample_texture",
    "seen_surface",
    "triplane_field",
    "uv_clip",
]
