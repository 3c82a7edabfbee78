"""Rendering: NeRF volume rendering of triplane fields."""

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
    "VolumeOptions",
    "VolumeRender",
    "clip_rays_to_box",
    "render_rays",
    "render_triplane",
    "render_views",
    "triplane_field",
]
