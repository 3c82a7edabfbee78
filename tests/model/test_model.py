import json

import pytest
import torch

from gtr_backend.errors import ConfigError, ViewError, WeightsError
from gtr_backend.model import GTR, preset, sample_triplane
from gtr_backend.model.transformer import SelfAttention
from gtr_backend.reconstruction import predict_triplane, prepare_inputs
from gtr_backend.views.sphere import sphere_views
from gtr_backend.weights import to_released_names
from tests.conftest import CHECKPOINT_LAYOUT

RELEASED_PARAMETERS = 411_403_556


def paper_on_meta() -> GTR:
    with torch.device("meta"):
        return GTR(preset("gtr-paper"))


def test_gtr_paper_matches_the_released_checkpoint_layout_key_for_key():
    layout = json.loads(CHECKPOINT_LAYOUT.read_text())
    expected = {
        f"{group}.{name}": shape
        for group, tensors in layout.items()
        if group != "_about"
        for name, shape in tensors.items()
    }
    model = paper_on_meta()
    mapped = {name: list(t.shape) for name, t in to_released_names(model.state_dict()).items()}
    assert sorted(mapped) == sorted(expected)
    assert mapped == expected
    assert model.num_parameters() == RELEASED_PARAMETERS


def test_forward_shapes_and_field_ranges():
    model = GTR(preset("gtr-tiny")).eval()
    views = sphere_views(size=48)  # resized to the model's 64x64 by prepare_inputs
    triplane = predict_triplane(model, views)
    assert triplane.shape == (3, 8, 32, 32) and triplane.dtype == torch.float32
    density, rgb = model.field.query(triplane[None], torch.rand(1, 500, 3) * 2 - 1)
    assert density.shape == (1, 500, 1) and rgb.shape == (1, 500, 3)
    assert density.min() >= 0 and rgb.min() >= -1e-3 and rgb.max() <= 1 + 1e-3


def test_small_preset_forward_on_the_cpu():
    model = GTR(preset("gtr-small")).eval()
    triplane = predict_triplane(model, sphere_views(size=512))
    assert triplane.shape == (3, 32, 64, 64)
    assert torch.isfinite(triplane).all()


def test_triplane_is_invariant_to_view_order():
    """Image tokens carry no positional code besides their rays, so shuffling views changes nothing."""
    model = GTR(preset("gtr-tiny")).eval()
    views = sphere_views(size=64, azimuths_deg=(0, 70, 150, 260))
    a = predict_triplane(model, views)
    b = predict_triplane(model, views.select([2, 0, 3, 1]))
    assert torch.allclose(a, b, atol=1e-5)
    c = predict_triplane(model, sphere_views(size=64, azimuths_deg=(10, 70, 150, 260)))
    assert not torch.allclose(a, c, atol=1e-3)  # but the cameras do matter


def test_triplane_sampling_convention():
    """Planes (xy, xz, yz); first coordinate along columns; feature index c * 3 + plane."""
    r = 16
    ramp = (torch.arange(r) + 0.5) / r * 2 - 1  # pixel-centre coordinates, align_corners=False
    triplane = torch.zeros(1, 3, 2, r, r)
    triplane[0, :, 0] = ramp[None, None, :]  # channel 0: the column coordinate
    triplane[0, :, 1] = ramp[None, :, None]  # channel 1: the row coordinate
    point = torch.tensor([[[0.3125, -0.4375, 0.5625]]])  # on pixel centres of the 16-grid
    features = sample_triplane(triplane, point)[0, 0]
    x, y, z = point[0, 0].tolist()
    # index c*3 + plane: channel 0 of planes xy, xz, yz -> x, x, y; channel 1 -> y, z, z
    assert torch.allclose(features, torch.tensor([x, x, y, y, z, z]), atol=1e-6)
    # Outside the box the border value is used.
    far = sample_triplane(triplane, torch.tensor([[[5.0, 0.0, 0.0]]]))[0, 0]
    assert far[0] == pytest.approx(float(ramp[-1]))


def test_attention_matches_a_plain_softmax_attention():
    attn = SelfAttention(width=32, num_heads=4, head_dim=8)
    x = torch.randn(2, 10, 32)
    q, k, v = (layer(x).view(2, 10, 4, 8).transpose(1, 2) for layer in (attn.q, attn.k, attn.v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    expected = attn.out((weights @ v).transpose(1, 2).reshape(2, 10, 32))
    assert torch.allclose(attn(x), expected, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_values_and_gradients():
    inputs = prepare_inputs(GTR(preset("gtr-tiny")), sphere_views(size=64))
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(1)
        model = GTR(preset("gtr-tiny", gradient_checkpointing=checkpointing))
        loss = model(inputs).square().mean()
        loss.backward()
        results.append((loss.detach(), model.transformer.blocks[0].ff.proj.weight.grad.clone()))
    assert torch.allclose(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_ablation_switches():
    inputs = torch.rand(1, 4, 10, 64, 64)
    deconv = GTR(preset("gtr-tiny", upsampler="deconv"))
    joint = GTR(preset("gtr-tiny", joint_mlp=True))
    assert deconv(inputs).shape == joint(inputs).shape == (1, 3, 8, 32, 32)
    assert any(n.startswith("upsampler.deconv.") for n in deconv.state_dict())
    assert any(n.startswith("field.mlp.") for n in joint.state_dict())
    assert not any("density_mlp" in n for n in joint.state_dict())
    density, rgb = joint.field.query(torch.randn(1, 3, 8, 32, 32), torch.rand(1, 7, 3))
    assert density.shape == (1, 7, 1) and rgb.shape == (1, 7, 3) and density.min() >= 0
    with pytest.raises(WeightsError, match="no counterpart in the released GTR layout"):
        to_released_names(deconv.state_dict())


def test_config_errors_and_view_count():
    with pytest.raises(ConfigError, match="not a multiple of patch_size"):
        preset("gtr-tiny", image_size=60)
    with pytest.raises(ConfigError, match="unknown preset 'gtr-huge'"):
        preset("gtr-huge")
    model = GTR(preset("gtr-tiny", min_views=4))
    with pytest.raises(ViewError, match="needs at least 4 views, got 3"):
        prepare_inputs(model, sphere_views(size=64, azimuths_deg=(0, 120, 240)))
    with pytest.raises(ViewError, match="expects inputs of shape"):
        model(torch.rand(1, 4, 10, 32, 32))


@pytest.mark.cuda
def test_cuda_and_cpu_agree_for_the_small_preset(monkeypatch):
    model = GTR(preset("gtr-small")).eval()
    views = sphere_views(size=256)
    cpu = predict_triplane(model, views, precision="fp32")
    model_cuda = model.to("cuda")
    # Full fp32 for the comparison; monkeypatch restores the process-wide flags for the tests after this one.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cuda = predict_triplane(model_cuda, views, precision="fp32").cpu()
    relative = (cuda - cpu).norm() / cpu.norm()
    assert relative < 1e-4
    bf16 = predict_triplane(model_cuda, views, precision="bf16").cpu()
    assert (bf16 - cpu).norm() / cpu.norm() < 3e-2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_precisions_stay_close_to_fp32(precision):
    model = GTR(preset("gtr-tiny")).eval()
    inputs = prepare_inputs(model, sphere_views(size=64))
    reference = model.triplane(inputs, precision="fp32")
    low = model.triplane(inputs, precision=precision)
    assert low.dtype == torch.float32
    assert 0 < (low - reference).norm() / reference.norm() < 3e-2  # really ran in lower precision, and close
