import math

import pytest
import torch
import trimesh

from gtr_backend.mesh import Mesh
from gtr_backend.pixels import psnr
from gtr_backend.views.sphere import sphere_views
from gtr_lab.evaluation.align import icp, kabsch, normalize_points
from gtr_lab.evaluation.metrics import chamfer_distance, inside_grid, sample_surface, ssim, volume_iou
from gtr_lab.evaluation.visual_hull import visual_hull


def box(centre, size) -> Mesh:
    b = trimesh.creation.box(extents=size)
    b.apply_translation(centre)
    return Mesh(torch.tensor(b.vertices, dtype=torch.float32), torch.tensor(b.faces))


def sphere(radius=0.6) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    return Mesh(torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces))


def test_psnr_of_known_noise():
    torch.manual_seed(0)
    target = torch.full((2, 3, 32, 32), 0.5)
    noisy = target + torch.where(torch.rand_like(target) < 0.5, 0.1, -0.1)  # MSE exactly 0.01
    assert torch.allclose(psnr(noisy, target), torch.tensor([20.0, 20.0]), atol=1e-4)
    assert torch.isinf(psnr(target, target)).all()


def test_ssim_identical_is_one_and_noise_lowers_it():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 48, 48)
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-6)
    noisy = (image + 0.2 * torch.randn_like(image)).clamp(0, 1)
    assert ssim(noisy, image).item() < 0.9
    flat = torch.full((1, 3, 48, 48), 0.3)
    assert ssim(flat, flat + 0.1).item() == pytest.approx((2 * 0.3 * 0.4 + 1e-4) / (0.09 + 0.16 + 1e-4), rel=1e-4)


def test_ssim_matches_the_textbook_two_dimensional_window():
    """The separable blur is the 11x11 Gaussian window of Wang et al.; float32 (the training loss) agrees."""
    torch.manual_seed(1)
    x, y = torch.rand(2, 3, 40, 40).double(), torch.rand(2, 3, 40, 40).double()
    g = torch.exp(-((torch.arange(11).double() - 5) ** 2) / (2 * 1.5**2))
    window = (g[:, None] * g[None, :] / g.sum() ** 2).expand(3, 1, 11, 11)

    def blur(t):
        return torch.nn.functional.conv2d(t, window, groups=3)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert torch.allclose(ssim(x, y).double(), expected.flatten(1).mean(1), atol=1e-6)
    assert torch.allclose(ssim(x, y, dtype=torch.float32), ssim(x, y), atol=1e-5)


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
