import math

import pytest
import torch
import trimesh

from gtr_backend.mesh import Mesh
from gtr_backend.metrics import psnr
from gtr_backend.views.sphere import sphere_views
from gtr_lab.evaluation.align import icp, kabsch, normalize_points
from gtr_lab.evaluation.metrics import chamfer_distance, inside_grid, sample_surface, volume_iou
from gtr_lab.evaluation.visual_hull import visual_hull


def box(centre, size) -> Mesh:
    b = trimesh.creation.box(extents=size)
    b.apply_translation(centre)
    return Mesh(torch.tensor(b.vertices, dtype=torch.float32), torch.tensor(b.faces))


def sphere(radius=0.6) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    return Mesh(torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces))


def test_chamfer_of_a_shifted_sphere():
    points = sample_surface(sphere(), 8000, seed=1)
    assert chamfer_distance(points, points) == 0
    shift = 0.1
    shifted = points + torch.tensor([shift, 0.0, 0.0])
    # Each point of a sphere moved by s along x lies about s |cos| from the surface, s / 2 on average: s in
    # both directions, plus a little for the gaps between samples (measured: 0.105 for s = 0.1).
    assert chamfer_distance(points, shifted) == pytest.approx(shift, rel=0.1)
    resampled = sample_surface(sphere(), 8000, seed=2)
    assert chamfer_distance(points, resampled) < 0.03  # the sampling floor at 8000 points (measured 0.024)


def test_iou_of_two_offset_cubes():
    a, b = box((0, 0, 0), (1, 1, 1)), box((0.25, 0, 0), (1, 1, 1))
    assert volume_iou(a, b, 64) == pytest.approx(0.75 / 1.25, abs=1e-9)  # grid-exact for these cubes
    assert volume_iou(a, a, 32) == 1.0
    assert inside_grid(sphere(), 64).float().mean() * 8 == pytest.approx(4 / 3 * math.pi * 0.216, rel=0.02)


def test_icp_recovers_a_small_rigid_motion():
    shape = box((0, 0, 0), (1.2, 0.6, 0.8))
    target = sample_surface(shape, 3000, seed=1)
    angle = math.radians(8)
    rotation = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    source = sample_surface(shape, 3000, seed=2) @ rotation.T + torch.tensor([0.05, -0.03, 0.02])
    moved, transform = icp(source, target)
    assert chamfer_distance(moved, target) < 0.5 * chamfer_distance(source, target)
    assert torch.allclose(transform.rotation @ rotation, torch.eye(3), atol=0.02)
    exact = kabsch(source, source @ rotation + 1.0)
    assert torch.allclose(exact.apply(source), source @ rotation + 1.0, atol=1e-4)
    unit, _, _ = normalize_points(source * 3 + 2)
    assert torch.allclose((unit.max(0).values - unit.min(0).values).max(), torch.tensor(2.0))


def test_visual_hull_contains_the_object_and_takes_its_colours():
    views = sphere_views(azimuths_deg=(0, 60, 120, 180, 240, 300), size=96, fov_deg=40)
    hull = visual_hull(views, 64)
    truth = sphere(0.6)
    assert hull.volume() >= truth.volume() * 0.99  # a hull never cuts into the object
    assert volume_iou(hull, truth, 64) > 0.9  # measured: 0.956 with these six views
    from gtr_backend.render import render_mesh

    render = render_mesh(hull, views.intrinsics, views.c2w, 96, 96)
    assert psnr(render.rgb, views.on_white()).min() > 25  # measured: 31-35 dB
