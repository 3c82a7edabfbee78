"""What the input masks say about 3D space: per-view silhouette cones as distance fields, and their visual hull.

A view's mask (N, 1, H, W) becomes a signed distance in pixels to the mask's outline (positive inside,
`mesh.distance.signed_distance`). A world point x seen by camera i at pixel u_i(x) and depth z_i(x) then has

    cone_i(x) = D_i(u_i(x)) * z_i(x) / f_i        (world units; f_i the focal length in pixels)

which is zero on the silhouette cone of view i, positive inside it, and close to the distance from x to the
cone near it. The visual hull is min_i cone_i (inside every cone). Points that project outside an image, or lie
behind a camera, count as outside that view's mask. Everything is in the world frame of the views.

Where a view also knows the depth D_i of the surface each pixel sees (a capture's depth pass), a point closer to
the camera than that surface is empty too: `depth_hull` is min_i (z_i(x) - D_i(u_i(x))) over the views that know
the depth at x's pixel, zero on every seen surface, negative in front of it (and unknown, +inf, elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..render.raster import clip_to_pixels, project, sample_images
from ..views.viewset import ViewSet
from .distance import image_signed_distance


@dataclass(frozen=True)
class SilhouetteCones:
    """Signed pixel distances (N, H, W) to each view's region outline, with the views' cameras."""

    distance: Tensor  # (N, H, W) float32, pixels, positive inside, clamped to [-band, band]
    intrinsics: Tensor  # (N, 4)
    c2w: Tensor  # (N, 4, 4)
    band: int

    @classmethod
    def of_regions(cls, regions: Tensor, views: ViewSet, band: int) -> SilhouetteCones:
        """regions (N, H, W) bool, one per view of `views` (same size) -> their cones."""
        return cls(image_signed_distance(regions, band), views.intrinsics, views.c2w, band)

    @classmethod
    def of_masks(cls, views: ViewSet, band: int) -> SilhouetteCones:
        """The cones of the views' masks (thresholded at 1/2)."""
        return cls.of_regions(views.foreground(), views, band)

    def pixel_distance(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """World points (P, 3) -> signed pixel distances (N, P) and camera depths (N, P)."""
        _, height, width = self.distance.shape
        clip = project(points, self.intrinsics, self.c2w, height, width)
        # Shift by the band so that zero padding (outside the image) reads as "far outside the region".
        shifted = (self.distance + self.band)[:, None]
        distance = sample_images(shifted, clip_to_pixels(clip, height, width))[..., 0] - self.band
        depth = clip[..., 3]
        return torch.where(depth > 1e-6, distance, torch.full_like(distance, -float(self.band))), depth

    def world_distance(self, points: Tensor) -> Tensor:
        """(N, P): each cone's signed distance at the points, in world units (positive inside the cone)."""
        distance, depth = self.pixel_distance(points)
        focal = self.intrinsics[:, :2].mean(dim=1, keepdim=True)  # (N, 1)
        return distance * depth.clamp_min(1e-6) / focal

    def hull(self, points: Tensor) -> Tensor:
        """(P,): signed distance-like value of the intersection of all cones (the visual hull)."""
        return self.world_distance(points).min(dim=0).values


def depth_hull(points: Tensor, views: ViewSet, band: float) -> Tensor:
    """(P,) for world points (P, 3): min over the views with a known depth at each point's pixel of (the point's
    camera depth - that depth), in world units: 0 on the surfaces the views see, negative in front of them.
    Points more than `band` behind every seen surface, or where no view knows the depth, read +`band` (the
    depth says nothing there). Depth is interpolated between known pixels only."""
    assert views.depth is not None
    clip = project(points, views.intrinsics, views.c2w, views.height, views.width)
    pixels = clip_to_pixels(clip, views.height, views.width)
    known = (views.depth > 0).float()
    weight = sample_images(known, pixels)[..., 0]  # (N, P)
    depth = sample_images(views.depth * known, pixels)[..., 0] / weight.clamp_min(1e-6)
    usable = (weight > 0.999) & (clip[..., 3] > 1e-6)
    gap = torch.where(usable, clip[..., 3] - depth, torch.full_like(depth, band)).clamp_max(band)
    return gap.min(dim=0).values
