"""The fast UV atlas: no texel owned by two faces (checked by rasterizing the layout twice, with the faces
stacked in opposite orders: wherever two faces cover a texel the two passes disagree), charts for meshes of
many pieces and for 200k faces, and coverage and texel density measured against xatlas."""

from __future__ import annotations

import math

import pytest
import torch

from gtr_backend.export import atlas
from gtr_backend.export.atlas import atlas_stats, fast_unwrap
from gtr_backend.export.bake import xatlas_unwrap
from gtr_backend.mesh import Mesh, extract_mesh, simplify
from gtr_backend.mesh.extract import DENSITY_LEVEL
from gtr_backend.render.raster import TorchRasterizer


def shared_texels(mesh: Mesh, size: int) -> int:
    """Texels whose centre two or more faces that are not neighbours cover: the layout as a triangle soup,
    depth = face order, drawn once front to back and once back to front."""
    assert mesh.uv is not None
    corners = mesh.uv[mesh.faces].reshape(-1, 2).float()
    order = torch.arange(mesh.num_faces, dtype=torch.float32).repeat_interleave(3) / mesh.num_faces
    soup = torch.arange(mesh.num_faces * 3).reshape(-1, 3)
    owners = []
    for depth in (1 + order, 2 - order):  # the rasterizer's depth is w: pixel = (x / w, y / w)
        x, y = corners[:, 0] * 2 - 1, (1 - corners[:, 1]) * 2 - 1
        clip = torch.stack([x * depth, y * depth, torch.zeros_like(depth), depth], -1)
        owners.append(TorchRasterizer().rasterize(clip[None], soup, size, size).triangle_id[0])
    differ = (owners[0] != owners[1]) & (owners[0] >= 0) & (owners[1] >= 0)
    first, second = owners[0][differ], owners[1][differ]
    # A texel centre exactly on the edge between two neighbouring faces counts for both; not an overlap.
    neighbours = (mesh.faces[first][:, :, None] == mesh.faces[second][:, None, :]).flatten(1).any(1)
    return int((~neighbours).sum())


def bumpy_sphere(resolution: int = 64) -> Mesh:
    def density(points: torch.Tensor) -> torch.Tensor:
        r = points.norm(dim=-1)
        bumps = 0.06 * torch.sin(9 * points[..., 0]) * torch.sin(7 * points[..., 1]) * torch.sin(8 * points[..., 2])
        return DENSITY_LEVEL + 20 * (0.6 + bumps - r)  # the level set is a bumpy sphere of radius 0.6

    return extract_mesh(density, resolution)


def pieces(count: int = 300) -> Mesh:
    """`count` small disconnected tetrahedra scattered in the box."""
    generator = torch.Generator().manual_seed(0)
    tetra = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]) * 0.05
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    offsets = torch.rand(count, 1, 3, generator=generator) * 1.6 - 0.8
    vertices = (tetra[None] + offsets).reshape(-1, 3)
    return Mesh(vertices, (faces[None] + 4 * torch.arange(count)[:, None, None]).reshape(-1, 3))


@pytest.mark.parametrize("make", [bumpy_sphere, pieces], ids=["bumpy sphere", "300 pieces"])
def test_no_texel_has_two_owners(make):
    mesh = make()
    unwrapped = fast_unwrap(mesh, 512)
    assert unwrapped.num_faces == mesh.num_faces
    assert unwrapped.uv is not None and float(unwrapped.uv.min()) >= 0 and float(unwrapped.uv.max()) <= 1
    # Same surface: every new vertex is an old one, and faces keep their corners' positions.
    assert torch.equal(unwrapped.vertices[unwrapped.faces], mesh.vertices[mesh.faces])
    assert shared_texels(unwrapped, 512) == 0


@pytest.mark.parametrize(
    ("free_rows", "reserve"),
    [(True, atlas.RESERVE), (True, 0.02), (False, atlas.RESERVE)],  # 0.02: the pleat at 0.7 of the scale
    ids=["placed in the free rows", "placed smaller in fewer free rows", "packed again"],
)
def test_folds_get_charts_of_their_own(free_rows, reserve, monkeypatch):
    """A pleat: a strip that doubles back over itself while still facing up projects onto itself; the guard
    must separate the layers, whether the folded faces go to the rows left free (at the atlas's scale, or
    smaller when those rows are too few) or everything is packed again."""
    monkeypatch.setattr(atlas, "RESERVE", reserve)
    placed = []

    def place_apart(*args):
        uv = atlas_place_apart(*args) if free_rows else None
        placed.append(uv is not None)
        return uv

    atlas_place_apart = atlas._place_apart
    monkeypatch.setattr(atlas, "_place_apart", place_apart)
    xs = torch.tensor([0.0, 0.6, 0.3, 0.9])  # forward, back, forward again, all in the same +Y-facing layer
    ys = torch.tensor([0.0, 0.05, 0.1, 0.15])
    vertices = torch.stack(
        [torch.stack([x.expand(2), y.expand(2), torch.tensor([0.0, 0.5])], -1) for x, y in zip(xs, ys, strict=True)]
    ).reshape(-1, 3)
    faces = []
    for i in range(3):
        a, b, c, d = 2 * i, 2 * i + 1, 2 * i + 2, 2 * i + 3
        faces += [[a, b, c], [b, d, c]] if i != 1 else [[a, c, b], [b, c, d]]
    pleat = Mesh(vertices * 0.1, torch.tensor(faces))
    sphere = bumpy_sphere(24)  # beside it, so that the pleat's faces are small in the atlas
    mesh = Mesh(torch.cat([pleat.vertices, sphere.vertices]), torch.cat([pleat.faces, sphere.faces + 8]))
    unwrapped = fast_unwrap(mesh, 256)
    assert torch.equal(unwrapped.vertices[unwrapped.faces], mesh.vertices[mesh.faces])
    assert shared_texels(unwrapped, 256) == 0
    assert placed and placed[-1] == free_rows  # the guard found the fold and took the path asked for


def test_coverage_and_density_beside_xatlas():
    """Measured on a 20k-face bumpy sphere at 1024 px (the numbers go to docs/RESULTS.md): the fast atlas
    covers a useful part of the texture with a bounded texel-density spread."""
    mesh = simplify(bumpy_sphere(96), 20000)
    fast = atlas_stats(fast_unwrap(mesh, 1024), 1024)
    tight = atlas_stats(xatlas_unwrap(mesh, 1024), 1024)
    assert fast.coverage > 0.3 and fast.density_spread < 2.5  # measured: see RESULTS.md
    assert tight.coverage > fast.coverage  # xatlas packs tighter; it stays available as --uv xatlas


def test_two_hundred_thousand_faces():
    mesh = bumpy_sphere(240)
    assert mesh.num_faces > 200_000
    unwrapped = fast_unwrap(mesh, 2048)
    assert unwrapped.num_faces == mesh.num_faces and shared_texels(unwrapped, 2048) == 0
    assert math.isfinite(atlas_stats(unwrapped, 2048).coverage)


def test_the_overlap_check_sees_an_overlap():
    square = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6]])  # the third face lies over parts of the first two
    square = torch.cat([square, square[[0, 1, 3]]])
    uv = square[:, :2] * 0.8 + 0.1
    assert shared_texels(Mesh(square, faces, uv=uv), 64) > 100


def test_small_textures_and_empty_meshes():
    """An atlas too small for the charts is a plain error that says what to do; an empty mesh unwraps to
    nothing; a large flat face at 4096 px does not need a texel grid of the whole atlas per face."""
    from gtr_backend.errors import GTRError

    with pytest.raises(GTRError, match="do not fit a 16 px texture; use a larger texture size or --uv xatlas"):
        fast_unwrap(pieces(300), 16)
    empty = fast_unwrap(Mesh(torch.zeros((0, 3)), torch.zeros((0, 3), dtype=torch.long)), 256)
    assert empty.num_faces == 0 and empty.uv is not None
    square = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2], [0, 2, 3]]))
    assert shared_texels(fast_unwrap(square, 4096), 1024) == 0
