"""Posed views: the `ViewSet`, its loaders and writers, cameras, rays and model inputs."""

from .cameras import intrinsics_from_fov, look_at, orbit_poses
from .images import Background
from .loaders import (
    Orbit,
    load_gtr_release,
    load_orbit,
    load_project_folder,
    load_views,
    load_zero123pp_grid,
    save_gtr_release,
    save_views,
    zero123pp_poses,
)
from .rays import model_inputs, pixel_rays, pluecker_rays
from .viewset import ViewSet

__all__ = [
    "Background",
    "Orbit",
    "ViewSet",
    "intrinsics_from_fov",
    "load_gtr_release",
    "load_orbit",
    "load_project_folder",
    "load_views",
    "load_zero123pp_grid",
    "look_at",
    "model_inputs",
    "orbit_poses",
    "pixel_rays",
    "pluecker_rays",
    "save_gtr_release",
    "save_views",
    "zero123pp_poses",
]
