import pytest
import torch

from gtr_backend.mesh.distance import distance_to, image_signed_distance, signed_distance


def brute_force(feature: torch.Tensor, band: int) -> torch.Tensor:
    cells = torch.stack(torch.meshgrid(*[torch.arange(s).float() for s in feature.shape], indexing="ij"), -1)
    cells = cells.reshape(-1, feature.dim())
    targets = torch.nonzero(feature).float()
    return torch.cdist(cells, targets).min(dim=1).values.reshape(feature.shape).clamp(max=band)


@pytest.mark.parametrize("shape", [(37, 52), (19, 23, 29)])
def test_distance_matches_brute_force_within_the_band(shape):
    feature = torch.rand(shape) < 0.02
    for band in (3, 8):
        assert torch.allclose(distance_to(feature, band), brute_force(feature, band), atol=1e-5)


def test_signed_distance_of_a_disc_is_its_radius_minus_the_distance_to_the_centre():
    size, radius = 96, 20.3
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    r = ((xx - 48.2) ** 2 + (yy - 47.7) ** 2).sqrt()
    sdf = signed_distance(r < radius, band=10)
    near = (r - radius).abs() < 9
    # A binary disc knows its outline to within a pixel; the field is the Euclidean one, not a city-block one.
    assert (sdf[near] - (radius - r[near])).abs().max() < 1.0
    assert sdf.max() == 10 and sdf.min() == -10  # clamped to the band


def test_no_feature_reads_as_far():
    assert torch.all(distance_to(torch.zeros(8, 9, dtype=torch.bool), 5) == 5)


def test_a_stack_of_masks_is_measured_image_by_image():
    masks = torch.zeros(3, 16, 16, dtype=torch.bool)
    masks[1, 4:12, 4:12] = True  # only the middle image has an object
    sdf = image_signed_distance(masks, band=6)
    assert sdf[1, 8, 8] == signed_distance(masks[1], 6)[8, 8] == 3.5  # not pulled down by the empty neighbours
    assert (sdf[0] == -6).all() and (sdf[2] == -6).all()
