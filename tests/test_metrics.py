"""gtr_backend.metrics: the one PSNR, SSIM and mask IoU of every stage, the fidelity score and the lab."""

import pytest
import torch

from gtr_backend.metrics import mask_iou, psnr, psnr_from_mse, ssim


def test_psnr_of_known_noise():
    torch.manual_seed(0)
    target = torch.full((2, 3, 32, 32), 0.5)
    noisy = target + torch.where(torch.rand_like(target) < 0.5, 0.1, -0.1)  # MSE exactly 0.01
    assert torch.allclose(psnr(noisy, target), torch.tensor([20.0, 20.0]), atol=1e-4)
    assert torch.equal(psnr(target, target), torch.tensor([100.0, 100.0]))  # floored, never inf


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


def test_psnr_from_mse_takes_floats_and_tensors_alike():
    assert psnr_from_mse(0.01) == pytest.approx(20.0)
    assert psnr_from_mse(0.0) == pytest.approx(100.0)
    assert torch.allclose(psnr_from_mse(torch.tensor([0.01, 0.0])), torch.tensor([20.0, 100.0]))


def test_mask_iou_per_view():
    covered = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    covered[0, :2] = masks[0, :2] = True  # the same 8 pixels: 1
    covered[1, :2], masks[1, 1:3] = True, True  # 4 shared of 12: 1/3
    assert torch.allclose(mask_iou(covered, masks), torch.tensor([1.0, 1 / 3, 0.0]))  # both empty: 0
