import pytest
import torch
from safetensors.torch import save_file

from gtr_backend.errors import WeightsError
from gtr_lab.lpips import LPIPS, load_lpips, lpips_distance


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Random weights written the way users have them: torchvision AlexNet (.pth) and lpips' alex.pth layout."""
    torch.manual_seed(0)
    reference = LPIPS()
    for lin in reference.lins:
        lin.weight.data.abs_()  # LPIPS' linear weights are non-negative
    folder = tmp_path_factory.mktemp("lpips")
    state = reference.state_dict()
    backbone = {k: v for k, v in state.items() if k.startswith("features.")}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision's file has the classifier too
    torch.save(backbone, folder / "alexnet.pth")
    lins = {f"lin{k.split('.')[1]}.model.1.weight": v for k, v in state.items() if k.startswith("lins.")}
    save_file(lins, str(folder / "alex.safetensors"))
    return reference.eval(), [folder / "alexnet.pth", folder / "alex.safetensors"]


def test_loaded_weights_reproduce_the_network(weight_files):
    reference, paths = weight_files
    model = load_lpips(paths)
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(lpips_distance(model, a, b), reference(a, b), atol=1e-6)


def test_distance_is_zero_for_identical_images_symmetric_and_grows_with_noise(weight_files):
    model = load_lpips(weight_files[1])
    torch.manual_seed(1)
    image = torch.rand(1, 3, 64, 64)
    noise = torch.randn_like(image)
    assert lpips_distance(model, image, image).item() == pytest.approx(0.0, abs=1e-7)
    little = (image + 0.05 * noise).clamp(0, 1)
    much = (image + 0.3 * noise).clamp(0, 1)
    d_little, d_much = lpips_distance(model, image, little).item(), lpips_distance(model, image, much).item()
    assert 0 < d_little < d_much
    assert lpips_distance(model, little, image).item() == pytest.approx(d_little, rel=1e-5)


def test_reads_the_lpips_package_full_state_dict(tmp_path, weight_files):
    reference, _ = weight_files
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
    state = {}
    for key, value in reference.state_dict().items():
        part = key.split(".")
        if part[0] == "features":
            state[f"net.slice{slices[int(part[1])]}.{part[1]}.{part[2]}"] = value
        else:
            state[f"lin{part[1]}.model.1.weight"] = value
    torch.save(state, tmp_path / "lpips_full.pth")
    model = load_lpips([tmp_path / "lpips_full.pth"])
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(lpips_distance(model, a, b), reference(a, b), atol=1e-6)


def test_incomplete_or_missing_weights_are_reported(tmp_path, weight_files):
    with pytest.raises(WeightsError, match="missing lins.0.weight"):
        load_lpips([weight_files[1][0]])
    with pytest.raises(WeightsError, match="not found"):
        load_lpips([tmp_path / "nope.pth"])
