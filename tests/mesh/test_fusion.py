"""Depth fusion: a capture's depth maps make the surface they show, flat where it is flat, thin parts kept."""

import math

import pytest
import torch
import trimesh
from captures import box, box_errors, box_turn, capture, open_edges

from gtr_backend.mesh import Mesh
from gtr_backend.mesh.fusion import DepthField, FusionOptions, fine_resolution, fuse_depth

EXTENTS = (0.9, 0.7, 0.8)


@pytest.fixture(scope="module")
def box_views():
    return capture(box(EXTENTS), size=384, count=16)


def test_a_turned_box_comes_out_flat_and_closed(box_views):
    """Every sampled point of the fused surface lies within a fraction of a voxel of the true box (which sits
    between grid points, turned on two axes): planes on the depth, not on voxel steps."""
    finest = fine_resolution(box_views, FusionOptions())[1]
    voxel = 2.0 / (finest - 1)
    mesh = fuse_depth(box_views)
    distance, angle = box_errors(mesh, EXTENTS, box_turn())
    print(
        f"grid {finest}, voxel {voxel:.4f}: mean {float(distance.mean()):.5f}, p99 {float(distance.quantile(0.99)):.5f}"
    )
    assert open_edges(mesh.faces) == 0
    assert float(distance.mean()) < 0.05 * voxel
    assert float(distance.quantile(0.99)) < 0.3 * voxel
    assert float(angle.median()) < 2.0  # the faces of the flat sides, not a staircase
    assert mesh.volume() == pytest.approx(math.prod(EXTENTS), rel=0.01)


def test_the_finest_voxel_follows_the_views_pixels(box_views):
    """Twice the pixels, about twice the grid (within the options' bounds)."""
    small = fine_resolution(box_views.resized(192), FusionOptions())[1]
    large = fine_resolution(box_views, FusionOptions())[1]
    assert small < large <= FusionOptions().max_resolution
    assert large / small == pytest.approx(2.0, rel=0.35)


def test_a_thin_plate_seen_from_both_sides_keeps_its_thickness():
    """A plate thinner than three voxels: its two faces stay apart, at its own thickness."""
    thickness = 0.03
    plate = trimesh.creation.box(extents=(1.0, thickness, 0.8))
    plate.apply_transform(trimesh.transformations.rotation_matrix(0.3, (1, 0, 0)))
    mesh = Mesh(torch.tensor(plate.vertices, dtype=torch.float32), torch.tensor(plate.faces))
    views = capture(mesh, size=384, count=16)
    voxel = 2.0 / (fine_resolution(views, FusionOptions())[1] - 1)
    assert thickness < 3 * voxel
    fused = fuse_depth(views)
    assert open_edges(fused.faces) == 0
    # Thickness: the volume over the plate's area.
    assert fused.volume() / (1.0 * 0.8) == pytest.approx(thickness, abs=0.35 * voxel)


def test_a_point_outside_a_mask_is_outside_whatever_the_depth_says(box_views):
    """The field is negative beyond every silhouette, also where depth maps would say nothing."""
    field = DepthField(box_views, FusionOptions().depth_jump)
    outside = torch.tensor([[0.95, 0.0, 0.0], [0.0, 0.95, 0.0], [0.0, 0.0, -0.95]])
    inside = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.1, 0.05]])
    assert bool((field(outside, 0.05) < 0).all()) and bool((field(inside, 0.05) > 0).all())


def test_views_without_depth_cannot_be_fused(box_views):
    bare = box_views.__class__.from_tensors(box_views.rgb, box_views.mask, box_views.intrinsics, box_views.c2w)
    with pytest.raises(ValueError, match="depth"):
        fuse_depth(bare)
