import numpy as np
import pytest
import torch
import trimesh

from gtr_backend.mesh import Mesh
from gtr_backend.render import TorchRasterizer, get_rasterizer, project, render_mesh, sample_texture
from gtr_backend.render.raster import nvdiffrast_available
from gtr_backend.views import look_at, pixel_rays
from gtr_backend.views.cameras import intrinsics_from_fov, orbit_poses


def unit_cube() -> Mesh:
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))  # [-0.5, 0.5]^3
    return Mesh(torch.tensor(box.vertices, dtype=torch.float32), torch.tensor(box.faces, dtype=torch.long))


def cube_hits(origins: torch.Tensor, directions: torch.Tensor, half: float = 0.5) -> torch.Tensor:
    """Distance to the cube [-half, half]^3 along each ray (float64), inf where it misses."""
    o, d = origins.double(), directions.double()
    safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t0, t1 = (-half - o) / safe, (half - o) / safe
    near = torch.minimum(t0, t1).amax(-1)
    far = torch.maximum(t0, t1).amin(-1)
    return torch.where(far > near, near, torch.full_like(near, float("inf")))


def cameras(size: int = 48):
    c2w = orbit_poses([10.0, 75.0, 200.0], [25.0, -35.0, 60.0], 2.4).float()
    k = intrinsics_from_fov(45.0, size, size).float().expand(3, 4)
    return k, c2w


def test_unit_cube_mask_and_depth_are_exact():
    size = 48
    k, c2w = cameras(size)
    render = render_mesh(unit_cube(), k, c2w, size, size, TorchRasterizer(), antialias=False)
    origins, directions = pixel_rays(k, c2w, size, size)
    t = cube_hits(origins, directions)
    truth = torch.isfinite(t)
    # Pixel centres within 1e-4 of a silhouette edge may go either way; all others must match exactly.
    undecided = torch.isfinite(cube_hits(origins, directions, 0.5001)) & ~torch.isfinite(
        cube_hits(origins, directions, 0.4999)
    )
    mask = render.alpha[:, 0] > 0.5
    assert ((mask ^ truth) & ~undecided).sum() == 0
    assert truth.sum() > 800
    z = (t * (directions.double() * c2w[:, None, None, :3, 2].double()).sum(-1))[truth & mask]
    assert torch.allclose(render.depth[:, 0][truth & mask].double(), z, atol=1e-4)
    assert (render.depth[:, 0][~mask] == 0).all()


def test_interpolation_is_perspective_correct():
    """A colour that is a linear function of the world position comes out as that function at each hit."""
    size = 40
    k, c2w = cameras(size)
    cube = unit_cube()
    colors = (cube.vertices + 0.5).clamp(0, 1)  # rgb = position + 0.5
    mesh = Mesh(cube.vertices, cube.faces, vertex_colors=colors)
    render = render_mesh(mesh, k, c2w, size, size, antialias=False)
    origins, directions = pixel_rays(k, c2w, size, size)
    t = cube_hits(origins, directions)
    hit = torch.isfinite(t) & (render.alpha[:, 0] > 0.5)
    points = origins.double() + directions.double() * t[..., None].where(torch.isfinite(t[..., None]), 0)
    expected = points + 0.5
    got = render.rgb.permute(0, 2, 3, 1).double()
    assert torch.allclose(got[hit], expected[hit], atol=1e-4)
    normals = render.normals.permute(0, 2, 3, 1)[hit]
    assert torch.allclose(normals.norm(dim=-1), torch.ones(int(hit.sum())), atol=1e-5)


def test_chunked_rasterization_matches_unchunked():
    k, c2w = cameras(32)
    ico = trimesh.creation.icosphere(subdivisions=3, radius=0.7)
    mesh = Mesh(torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces))
    clip = project(mesh.vertices, k, c2w, 32, 32)
    a = TorchRasterizer().rasterize(clip, mesh.faces, 32, 32)
    b = TorchRasterizer(max_pairs=97).rasterize(clip, mesh.faces, 32, 32)
    assert torch.equal(a.triangle_id, b.triangle_id)
    assert torch.allclose(a.barycentrics, b.barycentrics)


def test_textured_quad_uses_the_obj_uv_convention():
    """uv (0, 0) is the bottom-left of the texture image, v goes up."""
    texture = torch.zeros(2, 2, 3)
    texture[0, 0] = torch.tensor([1.0, 0, 0])  # top-left: red
    texture[0, 1] = torch.tensor([0, 1.0, 0])  # top-right: green
    texture[1, 0] = torch.tensor([0, 0, 1.0])  # bottom-left: blue
    texture[1, 1] = torch.tensor([1.0, 1, 0])  # bottom-right: yellow
    corners = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    rgb = sample_texture(texture, corners)
    assert torch.allclose(rgb, torch.tensor([[0.0, 0, 1], [1.0, 1, 0], [1.0, 0, 0], [0, 1.0, 0]]))
    # A quad facing a camera on +Z, with uv laid out so the texture appears upright.
    vertices = torch.tensor([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uv = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    quad = Mesh(vertices, faces, uv=uv, texture=texture)
    k = intrinsics_from_fov(30.0, 64, 64)[None].float()
    render = render_mesh(quad, k, look_at([0.0, 0.0, 3.0])[None].float(), 64, 64, background=None, antialias=False)
    top_left = render.rgb[0, :, 15, 15]  # upper-left of the image: the texture's top-left (red)
    bottom_right = render.rgb[0, :, 48, 48]
    assert torch.allclose(top_left, torch.tensor([1.0, 0, 0]), atol=1e-4)
    assert torch.allclose(bottom_right, torch.tensor([1.0, 1, 0]), atol=1e-4)
    assert (render.rgb[0, :, 2, 2] == 0).all()  # transparent background stays empty


def test_mipmaps_average_a_texture_finer_than_the_pixels_and_keep_one_as_coarse():
    """A quad whose 240-texel checker is seen at 16 pixels: read at one point per pixel every pixel is black or
    white, through the mipmaps each is the checker's mean (as the camera's own pixel would average it); seen at
    256 pixels (about a texel per pixel) the mipmapped read is the plain one."""
    cells = (torch.arange(240)[:, None] + torch.arange(240)[None]) % 2
    texture = cells[..., None].float().expand(240, 240, 3).contiguous()
    vertices = torch.tensor([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]])
    quad = Mesh(vertices, torch.tensor([[0, 1, 2], [0, 2, 3]]), uv=vertices[:, :2] + 0.5, texture=texture)
    c2w = look_at([0.0, 0.0, 2.0])[None].float()
    inner = (slice(None), slice(None), slice(10, 22), slice(10, 22))  # well inside the quad at 32 px
    for size in (32, 512):
        k = torch.tensor([[size, size, size / 2, size / 2]])  # the quad spans half the image
        plain = render_mesh(quad, k, c2w, size, size, background=None, antialias=False)
        mipmapped = render_mesh(quad, k, c2w, size, size, background=None, antialias=False, mipmaps=True)
        if size == 32:
            assert ((plain.rgb[inner] - 0.5).abs() > 0.4).float().mean() > 0.9  # aliased: black or white
            assert torch.allclose(mipmapped.rgb[inner], torch.full_like(mipmapped.rgb[inner], 0.5), atol=0.02)
        else:
            assert torch.allclose(mipmapped.rgb, plain.rgb, atol=1e-4)


def nvdiffrast_or_skip():
    """nvdiffrast's rasterizer on CUDA; skipped where it is not installed or cannot be built (no nvcc or ninja),
    a failed build fails the test."""
    from gtr_backend.render.nvdiffrast_build import MissingToolsError

    if not nvdiffrast_available():
        pytest.skip("the optional diffrp-nvdiffrast package is not installed")
    try:
        return get_rasterizer("cuda", "nvdiffrast")
    except MissingToolsError as error:
        pytest.skip(str(error))


@pytest.mark.cuda
def test_nvdiffrast_and_torch_agree_up_to_edge_pixels():
    nvdiffrast = nvdiffrast_or_skip()
    size = 96
    k, c2w = (t.cuda() for t in cameras(size))
    ico = trimesh.creation.icosphere(subdivisions=3, radius=0.7)
    colors = torch.rand(len(ico.vertices), 3)
    mesh = Mesh(torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces), vertex_colors=colors).to(
        "cuda"
    )
    ours = render_mesh(mesh, k, c2w, size, size, TorchRasterizer(), antialias=False)
    theirs = render_mesh(mesh, k, c2w, size, size, nvdiffrast, antialias=False)
    a, b = ours.alpha[:, 0] > 0.5, theirs.alpha[:, 0] > 0.5
    edge = (
        torch.nn.functional.max_pool2d(a.float()[:, None], 3, 1, 1)[:, 0]
        != -torch.nn.functional.max_pool2d(-a.float()[:, None], 3, 1, 1)[:, 0]
    )
    assert ((a ^ b) & ~edge).sum() == 0
    same = a & b & ~edge
    same_triangle = ours.fragments.triangle_id == theirs.fragments.triangle_id
    assert same_triangle[same].float().mean() > 0.99  # the others lie on edges shared by two triangles
    same = same & same_triangle
    assert torch.allclose(ours.rgb.permute(0, 2, 3, 1)[same], theirs.rgb.permute(0, 2, 3, 1)[same], atol=1e-3)
    assert torch.allclose(ours.depth[:, 0][same], theirs.depth[:, 0][same], atol=1e-4)
    assert np.isfinite(theirs.rgb.cpu().numpy()).all()


def square(cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat square [-1, 1]^2 (z = 0) cut into cells x cells quads, two triangles each, facing +Z."""
    axis = torch.linspace(-1.0, 1.0, cells + 1)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    vertices = torch.stack([xx, yy, torch.zeros_like(xx)], -1).reshape(-1, 3)
    i = torch.arange(cells)
    a = (i[:, None] * (cells + 1) + i[None, :]).reshape(-1)
    b, c, d = a + 1, a + cells + 2, a + cells + 1
    return vertices, torch.cat([torch.stack([a, b, c], -1), torch.stack([a, c, d], -1)])


def square_coverage(half: torch.Tensor, rasterizer, size: int = 64, cells: int = 1) -> torch.Tensor:
    """Anti-aliased coverage (1, S, S) of a square of half-width `half` (world units, facing a +Z camera at
    distance 3), placed off the pixel grid so its edges fall inside pixels; `cells` per side cut it into
    small triangles (at 24 cells, each about a pixel wide)."""
    corners, faces = square(cells)
    vertices = corners * half + torch.tensor([0.013, -0.021, 0.0])
    k = intrinsics_from_fov(30.0, size, size)[None].float()
    clip = project(vertices, k, look_at([0.0, 0.0, 3.0])[None].float(), size, size)
    fragments = rasterizer.rasterize(clip, faces, size, size)
    covered = fragments.mask[..., None].float()
    return rasterizer.antialias(covered, fragments, clip, faces)[..., 0]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize(("half", "cells"), [(0.3, 1), (0.47, 1), (0.3, 24), (0.47, 40)])
def test_antialiased_coverage_measures_area_and_moves_with_the_outline(device, half, cells):
    """Also with triangles about a pixel wide: an edge between two of them is not the outline, so the pixel
    next to the outline must not be dimmed by it (which would make a mask loss grow every mesh outwards)."""
    rasterizer = TorchRasterizer() if device == "cpu" else nvdiffrast_or_skip()
    size = 64
    focal = float(intrinsics_from_fov(30.0, size, size)[0])
    side = 2 * half * focal / 3.0  # the square's side in pixels (about 24 and 38)
    h = torch.tensor(half, requires_grad=True)
    coverage = square_coverage(h, rasterizer, size, cells)
    area = coverage.sum()
    # The z-buffer alone is off by up to a pixel row per side (tens of pixels); the outline is found to 2 px^2.
    assert abs(area.item() - side**2) < 2.0
    # The coverage moves with the vertices: d(area)/d(half) is the perimeter's push, 2 * side * (2 f / 3).
    (gradient,) = torch.autograd.grad(area, h)
    assert gradient.item() == pytest.approx(2 * side * (2 * focal / 3.0), rel=0.06)
