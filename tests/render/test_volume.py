import torch
import torch.nn.functional as F

from gtr_backend.model import GTR, preset
from gtr_backend.reconstruction import predict_triplane
from gtr_backend.render import VolumeOptions, clip_rays_to_box, render_rays, render_triplane, render_views
from gtr_backend.views import look_at, pixel_rays
from gtr_backend.views.cameras import intrinsics_from_fov, orbit_poses
from gtr_backend.views.sphere import sphere_hits, sphere_views

CENTRE, RADIUS = (0.1, -0.05, 0.2), 0.55


def sphere_field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A hard sphere: density 2000 inside, 0 outside; red inside."""
    inside = (points - torch.tensor(CENTRE)).norm(dim=-1, keepdim=True) < RADIUS
    rgb = torch.zeros(points.shape[0], 3)
    rgb[:, 0] = 1
    return inside.float() * 2000.0, rgb


def test_clip_rays_to_box():
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.0, 3.0, 3.0], [0.0, 0.0, 0.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    t_near, t_far = clip_rays_to_box(origins, directions, bound=1.0, near=0.2)
    assert torch.allclose(t_near[0], torch.tensor(2.0)) and torch.allclose(t_far[0], torch.tensor(4.0))
    assert t_far[1] <= t_near[1]  # misses the box
    assert torch.allclose(t_near[2], torch.tensor(0.2)) and torch.allclose(t_far[2], torch.tensor(1.0))


def test_sphere_mask_and_depth_match_the_analytic_projection():
    size = 64
    k = intrinsics_from_fov(40.0, size, size).expand(3, 4).float()
    c2w = orbit_poses([15.0, 100.0, 230.0], [25.0, -10.0, 5.0], 2.6).float()
    render = render_views(sphere_field, k, c2w, size, size, VolumeOptions(num_samples=256))
    origins, directions = pixel_rays(k, c2w, size, size)
    truth_t = sphere_hits(origins, directions, CENTRE, RADIUS)
    truth = torch.isfinite(truth_t)
    mask = render.opacity[:, 0] > 0.5
    # Mask: every disagreement lies on the one-pixel rim of the projected sphere.
    t = truth.float()[:, None]
    rim = (F.max_pool2d(t, 3, 1, 1) - (-F.max_pool2d(-t, 3, 1, 1)))[:, 0] > 0
    assert truth.sum() > 500
    assert not (mask ^ truth)[~rim].any()
    # Depth: the analytic distance along the ray, within one sample spacing (2 * sqrt(3) / 256), as camera z.
    both = mask & truth
    cos = (directions * c2w[:, None, None, :3, 2]).sum(-1)
    error = (render.depth[:, 0][both] - (truth_t * cos)[both]).abs()
    assert error.max() < 2 * 3**0.5 / 256
    # Colour: red on the sphere, white elsewhere.
    pixels = render.rgb.permute(0, 2, 3, 1)
    assert torch.allclose(pixels[both], torch.tensor([1.0, 0.0, 0.0]), atol=1e-2)
    assert torch.allclose(pixels[~truth & ~rim], torch.ones(1, 3))
    assert torch.all(render.depth[:, 0][~truth & ~rim] == 0)


def test_chunking_bounds_each_query_and_changes_nothing():
    calls = []

    def counting_field(points):
        calls.append(points.shape[0])
        return sphere_field(points)

    k = intrinsics_from_fov(40.0, 32, 32)[None].float()
    c2w = look_at([0.0, 0.4, 2.5])[None].float()
    small = VolumeOptions(num_samples=64, chunk_points=64 * 100)
    a = render_views(counting_field, k, c2w, 32, 32, small)
    assert max(calls) <= small.chunk_points and len(calls) == -(-32 * 32 // 100)
    b = render_views(sphere_field, k, c2w, 32, 32, VolumeOptions(num_samples=64))
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)


def test_transparent_background_and_stratified_sampling():
    k = intrinsics_from_fov(40.0, 24, 24)[None].float()
    c2w = look_at([0.0, 0.0, 2.5])[None].float()
    plain = render_views(sphere_field, k, c2w, 24, 24, VolumeOptions(num_samples=128, background=None))
    assert torch.allclose(plain.rgb[:, 0], plain.opacity[:, 0], atol=1e-5)  # premultiplied red
    jittered = render_views(sphere_field, k, c2w, 24, 24, VolumeOptions(num_samples=128, stratified=True))
    assert ((jittered.opacity > 0.5) ^ (plain.opacity > 0.5)).float().mean() < 0.02


def test_render_a_predicted_triplane():
    model = GTR(preset("gtr-tiny")).eval()
    views = sphere_views(size=64)
    triplane = predict_triplane(model, views)
    with torch.no_grad():
        render = render_triplane(
            model.field, triplane, views.intrinsics[:2], views.c2w[:2], 20, 30, VolumeOptions(num_samples=32)
        )
    assert render.rgb.shape == (2, 3, 20, 30) and render.opacity.shape == render.depth.shape == (2, 1, 20, 30)
    assert render.opacity.min() >= 0 and render.opacity.max() <= 1 + 1e-5
    assert torch.isfinite(render.rgb).all()


def test_rays_outside_the_box_render_background():
    origins = torch.tensor([[0.0, 5.0, 5.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0]])
    rgb, opacity, depth = render_rays(sphere_field, origins, directions)
    assert torch.equal(rgb, torch.ones(1, 3)) and opacity.item() == 0 and depth.item() == 0
