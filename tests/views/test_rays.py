import torch

from gtr_backend.views import look_at, model_inputs, pixel_rays, pluecker_rays
from gtr_backend.views.cameras import intrinsics_from_fov
from gtr_backend.views.sphere import sphere_views


def test_rays_pass_through_pixel_centres():
    c2w = look_at([0.3, 0.8, 2.5])[None]
    k = torch.tensor([[70.0, 60.0, 17.0, 13.0]], dtype=torch.float64)
    origins, dirs = pixel_rays(k, c2w, 24, 32)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(1, 24, 32, dtype=torch.float64))
    assert torch.allclose(origins[0, 5, 7], c2w[0, :3, 3])
    # Project a point on the ray of pixel (column 7, row 5) back: it lands on (7.5, 5.5).
    point = origins[0, 5, 7] + 1.7 * dirs[0, 5, 7]
    cam = c2w[0, :3, :3].T @ (point - c2w[0, :3, 3])
    u = k[0, 0] * cam[0] / cam[2] + k[0, 2]
    v = k[0, 1] * cam[1] / cam[2] + k[0, 3]
    assert torch.allclose(torch.stack([u, v]), torch.tensor([7.5, 5.5], dtype=torch.float64))


def test_pluecker_moment_is_cross_d_o():
    c2w = look_at([1.0, 0.5, 2.0])[None]
    k = intrinsics_from_fov(40.0, 8, 8)[None]
    rays = pluecker_rays(k, c2w, 8, 8)
    assert rays.shape == (1, 6, 8, 8)
    d, m = rays[0, :3, 2, 5], rays[0, 3:, 2, 5]
    o = c2w[0, :3, 3]
    expected = torch.stack([d[1] * o[2] - d[2] * o[1], d[2] * o[0] - d[0] * o[2], d[0] * o[1] - d[1] * o[0]])
    assert torch.allclose(m, expected)
    # A Pluecker moment does not depend on which point of the ray is used, and is orthogonal to d.
    assert torch.allclose(torch.linalg.cross(d, o + 0.7 * d), m)
    assert abs(float(d @ m)) < 1e-12


def test_model_inputs_channel_order():
    views = sphere_views(size=16)
    inputs = model_inputs(views)
    assert inputs.shape == (4, 10, 16, 16) and inputs.dtype == torch.float32
    assert torch.equal(inputs[:, :3], views.on_white())
    assert torch.allclose(inputs[:, 3:6].norm(dim=1), torch.ones(4, 16, 16))
    assert torch.equal(inputs[:, 9:], views.mask)
    # Background pixels are white in the RGB channels.
    background = views.mask[:, 0] == 0
    assert torch.all(inputs[:, 0][background] == 1)
