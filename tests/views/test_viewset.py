import math

import pytest
import torch

from gtr_backend.errors import ViewError
from gtr_backend.views import ViewSet
from gtr_backend.views.rays import pixel_rays
from gtr_backend.views.sphere import sphere_hits, sphere_views


def test_resize_scales_intrinsics_to_match_the_image():
    big = sphere_views(size=96, radius=0.7)
    small = big.resized(48)
    assert (small.height, small.width) == (48, 48)
    assert torch.allclose(small.intrinsics, big.intrinsics / 2)
    # The resized mask equals the analytic sphere seen by the resized camera, up to the rim.
    origins, dirs = pixel_rays(small.intrinsics, small.c2w, 48, 48)
    truth = torch.isfinite(sphere_hits(origins, dirs, (0, 0, 0), 0.7)).float()
    disagree = ((small.mask[:, 0] > 0.5).float() - truth).abs()
    assert disagree.sum() / truth.sum() < 0.03
    # Non-square targets scale each axis on its own.
    wide = big.resized((48, 96))
    assert torch.allclose(wide.intrinsics[:, [0, 2]], big.intrinsics[:, [0, 2]])
    assert torch.allclose(wide.intrinsics[:, [1, 3]], big.intrinsics[:, [1, 3]] / 2)


def test_resize_does_not_bleed_background_into_the_object():
    views = sphere_views(size=64)
    red = torch.zeros_like(views.rgb)
    red[:, 0] = 1.0
    red_views = ViewSet(red, views.mask, views.intrinsics, views.c2w, views.names).resized(24)
    rim = (red_views.mask > 0.05) & (red_views.mask < 0.95)
    assert rim.any()
    assert torch.allclose(red_views.rgb[:, :1][rim], torch.ones(int(rim.sum())), atol=1e-4)
    assert torch.all(red_views.rgb[:, 1:][rim.expand(-1, 2, -1, -1)] < 1e-4)


def corrupt(views: ViewSet, **changes: torch.Tensor) -> ViewSet:
    fields = {"rgb": views.rgb, "mask": views.mask, "intrinsics": views.intrinsics, "c2w": views.c2w}
    fields.update(changes)
    return ViewSet(**fields, names=views.names)


def test_validation_names_the_view_and_the_problem():
    views = sphere_views(size=16)
    rgb = views.rgb.clone()
    rgb[2, 0, 3, 3] = math.nan
    with pytest.raises(ViewError, match=r"view 2 \(sphere_az180\): its rgb contains NaN"):
        corrupt(views, rgb=rgb)
    k = views.intrinsics.clone()
    k[1, 0] = math.inf
    with pytest.raises(ViewError, match=r"view 1 .*intrinsics contains NaN or Inf"):
        corrupt(views, intrinsics=k)
    with pytest.raises(ViewError, match=r"view 0 .*\[0, 1\]"):
        corrupt(views, rgb=views.rgb * 2)
    mask = views.mask.clone()
    mask[3] = 0
    with pytest.raises(ViewError, match="view 3 .*mask is empty"):
        corrupt(views, mask=mask)
    c2w = views.c2w.clone()
    c2w[1, :3, :3] *= 1.5
    with pytest.raises(ViewError, match="view 1 .*not rigid"):
        corrupt(views, c2w=c2w)
    with pytest.raises(ViewError, match="mask has shape"):
        corrupt(views, mask=views.mask[:, :, :8])
    k = views.intrinsics.clone()
    k[0, 1] = -5
    with pytest.raises(ViewError, match="focal lengths must be positive"):
        corrupt(views, intrinsics=k)


def test_select_and_on_white():
    views = sphere_views(size=16)
    picked = views.select([3, 1])
    assert picked.names == ("sphere_az270", "sphere_az90")
    assert torch.equal(picked.c2w[0], views.c2w[3])
    white = views.on_white()
    assert torch.all(white[views.mask.expand_as(white) == 0] == 1)
