"""Training data that looks like user input: input rigs drawn per asset (the orbit capture, other lenses, the
Zero123++ rig) and input views lit as a Blender capture is, while supervision views stay plain."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from gtr_backend.contract import ORBIT_DISTANCE, ORBIT_FOV_DEG
from gtr_backend.errors import GTRError
from gtr_backend.render.raster import TorchRasterizer
from gtr_lab.training.dataset import ViewSampling, asset_cameras, asset_light, render_procedural

CPU = torch.device("cpu")
RIGS = ViewSampling(size=64, supervision_views=2, input_rigs=("orbit", "lens", "zero123pp"))


def fov_of(intrinsics: torch.Tensor, size: int) -> torch.Tensor:
    """Horizontal field of view in degrees from (N, 4) fx, fy, cx, cy."""
    return torch.rad2deg(2 * torch.atan(size / 2 / intrinsics[:, 0]))


def elevation_of(c2w: torch.Tensor) -> torch.Tensor:
    centres = c2w[:, :3, 3]
    return torch.rad2deg(torch.asin(centres[:, 1] / centres.norm(dim=-1)))


def test_every_rig_occurs_and_keeps_each_object_whole_in_every_input_view():
    seen = set()
    for seed in range(24):
        k, c2w = asset_cameras(seed, RIGS, CPU)
        inputs = c2w[: RIGS.input_views]
        distance = float(inputs[0, :3, 3].norm())
        fov = float(fov_of(k[:1], RIGS.size))
        if math.isclose(distance, 4.0, rel_tol=1e-4):
            seen.add("zero123pp")
            assert fov == pytest.approx(30.0, abs=1e-3)
            assert elevation_of(inputs).tolist() == pytest.approx([20.0, -10.0, 20.0, -10.0], abs=1e-3)
        elif math.isclose(distance, ORBIT_DISTANCE, rel_tol=1e-4) and math.isclose(fov, ORBIT_FOV_DEG, rel_tol=1e-4):
            seen.add("orbit")
            assert float(elevation_of(inputs).std()) < 1e-3  # one elevation
        else:
            seen.add("lens")
            assert 20.0 <= fov <= 60.0
        # supervision views are never changed by the rig
        assert fov_of(k[RIGS.input_views :], RIGS.size).tolist() == pytest.approx([ORBIT_FOV_DEG] * 2, abs=1e-3)
        views = render_procedural(seed, RIGS, CPU, TorchRasterizer())
        mask = views.mask[: RIGS.input_views, 0] > 0
        border = torch.cat([mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1]], dim=1)
        assert not bool(border.any()), f"seed {seed}: the object touches the border of an input view"
        assert float(mask.float().mean()) > 0.01  # and it is in view
    assert seen == {"orbit", "lens", "zero123pp"}


def test_the_default_rig_is_the_orbit_the_add_on_captures():
    sampling = ViewSampling(size=64)
    _, c2w = asset_cameras(3, sampling, CPU)
    inputs = c2w[:4, :3, 3]
    assert inputs.norm(dim=-1).tolist() == pytest.approx([ORBIT_DISTANCE] * 4, rel=1e-5)
    azimuths = torch.rad2deg(torch.atan2(inputs[:, 0], inputs[:, 2]))
    steps = torch.remainder(azimuths.roll(-1) - azimuths, 360.0)
    assert torch.minimum(steps, 360 - steps).tolist() == pytest.approx([90.0] * 4, abs=1e-3)  # equal quarter turns


def test_lit_inputs_are_shaded_and_supervision_views_stay_plain():
    plain = replace(RIGS, input_rigs=("orbit",))
    lit = replace(plain, input_light=1.0)
    seed = next(s for s in range(50) if asset_light(s, lit) is not None)
    light = asset_light(seed, lit)
    assert light is not None and 0.45 <= light.ambient <= 0.85
    a = render_procedural(seed, plain, CPU, TorchRasterizer())
    b = render_procedural(seed, lit, CPU, TorchRasterizer())
    n = plain.input_views
    assert torch.equal(a.rgb[n:], b.rgb[n:]) and torch.equal(a.mask, b.mask)
    inside = a.mask[:n].expand(-1, 3, -1, -1) > 0.99
    assert bool((b.rgb[:n] <= a.rgb[:n] + 1e-6).all())  # a light never brightens past the colour itself
    ratio = b.rgb[:n][inside] / a.rgb[:n][inside].clamp_min(1e-3)
    bright = a.rgb[:n][inside] > 0.1
    assert float(ratio[bright].min()) >= light.ambient - 1e-3  # ambient at the least
    assert float(ratio[bright].std()) > 0.02  # shading varies over the surface, not one flat dimming
    assert not bool((b.rgb[:n][~inside] != a.rgb[:n][~inside]).any())  # the background stays white


def test_an_unknown_rig_or_share_is_refused():
    with pytest.raises(GTRError, match="unknown input rig"):
        ViewSampling(input_rigs=("fisheye",))
    with pytest.raises(GTRError, match="between 0 and 1"):
        ViewSampling(input_light=2.0)


def test_a_dataset_folder_gets_the_same_lit_inputs(tmp_path):
    from gtr_backend.views import load_views
    from gtr_lab.training.dataset import write_dataset
    from gtr_lab.training.procedural import random_object

    plain = ViewSampling(size=48, supervision_views=2)
    lit = replace(plain, input_light=1.0)
    obj = random_object(5)
    a = load_views(write_dataset([obj], tmp_path / "plain", plain)[0])
    b = load_views(write_dataset([obj], tmp_path / "lit", lit)[0])
    n = plain.input_views
    inside = a.mask[:n].expand(-1, 3, -1, -1) > 0.99
    assert float(b.rgb[:n][inside].mean()) < float(a.rgb[:n][inside].mean()) - 0.02
    assert torch.allclose(a.rgb[n:], b.rgb[n:])
    assert ViewSampling.from_dict({"size": 48}) == ViewSampling(size=48)  # older dataset.json files still read
