import contextlib
import json
import resource
import signal

import numpy as np
import pytest
import torch
import trimesh

from gtr_backend.errors import GTRError, WriteError
from gtr_backend.export import bake_texture, bake_vertex_colors, pull_push, unwrap, write_mesh
from gtr_backend.mesh import Mesh, extract_mesh, simplify
from gtr_backend.model import sample_triplane
from gtr_backend.refine import ColorField, visible_surface
from gtr_backend.render import render_mesh
from gtr_backend.render.raster import TorchRasterizer, project


@pytest.fixture(scope="module")
def baked(fitted_sphere):
    field, triplane, views = fitted_sphere
    mesh = extract_mesh(lambda p: field.density(sample_triplane(triplane[None], p[None])[0]), 48)
    mesh = simplify(mesh, 3000)
    colors = ColorField(triplane, field)
    unwrapped = unwrap(mesh, texture_size=512)
    texture = bake_texture(unwrapped, colors, 512)
    return mesh, colors, Mesh(unwrapped.vertices, unwrapped.faces, uv=unwrapped.uv, texture=texture), views


def test_unwrap_keeps_the_surface(baked):
    mesh, _, textured, _ = baked
    assert textured.num_faces == mesh.num_faces
    assert textured.uv.min() >= 0 and textured.uv.max() <= 1
    assert textured.area() == pytest.approx(mesh.area(), rel=1e-5)
    assert textured.volume() == pytest.approx(mesh.volume(), rel=1e-5)


def test_glb_round_trip_reproduces_the_colours(tmp_path, baked):
    _, colors, textured, views = baked
    path = tmp_path / "sphere.glb"
    assert write_mesh(textured, path) == [path]
    loaded = trimesh.load(path, force="mesh")
    assert np.allclose(loaded.vertices, textured.vertices.numpy(), atol=1e-6)  # same frame, Y up
    assert loaded.visual.uv.shape == (textured.num_vertices, 2)
    image = loaded.visual.material.baseColorTexture
    assert image.size == (512, 512)
    reloaded = Mesh(
        torch.tensor(loaded.vertices, dtype=torch.float32),
        torch.tensor(loaded.faces),
        uv=torch.tensor(loaded.visual.uv, dtype=torch.float32),
        texture=torch.tensor(np.asarray(image.convert("RGB")), dtype=torch.float32) / 255,
    )
    # Render the re-imported mesh from an input camera; compare with the colour field at the same points.
    render = render_mesh(reloaded, views.intrinsics[:2], views.c2w[:2], 128, 128, background=None, antialias=False)
    rasterizer = TorchRasterizer()
    clip = project(reloaded.vertices, views.intrinsics[:2], views.c2w[:2], 128, 128)
    fragments = rasterizer.rasterize(clip, reloaded.faces, 128, 128)
    points = rasterizer.interpolate(reloaded.vertices, fragments, reloaded.faces)[fragments.mask]
    with torch.no_grad():
        expected = colors(points).clamp(0, 1)
    got = render.rgb.permute(0, 2, 3, 1)[fragments.mask]
    mse = float(((got - expected) ** 2).mean())
    assert 10 * np.log10(1 / mse) > 35  # measured: 47.8 dB (8-bit texture, bilinear lookups)


def test_obj_and_vertex_colour_ply(tmp_path, baked):
    mesh, colors, textured, _ = baked
    files = write_mesh(textured, tmp_path / "sphere.obj")
    assert {f.suffix for f in files} == {".obj", ".mtl", ".png"}
    assert "map_Kd" in (tmp_path / "sphere.mtl").read_text()
    loaded = trimesh.load(tmp_path / "sphere.obj", force="mesh")
    assert len(loaded.faces) == textured.num_faces
    coloured = bake_vertex_colors(mesh, colors)
    write_mesh(coloured, tmp_path / "sphere.ply")
    ply = trimesh.load(tmp_path / "sphere.ply")
    assert np.allclose(ply.visual.vertex_colors[:, :3] / 255, coloured.vertex_colors.numpy(), atol=1 / 255)


def test_writer_errors(tmp_path, baked):
    with pytest.raises(GTRError, match="unknown mesh format '.fbx'"):
        write_mesh(baked[2], tmp_path / "x.fbx")
    with pytest.raises(GTRError, match="does not exist"):
        write_mesh(baked[2], tmp_path / "missing" / "x.glb")
    (tmp_path / "folder.glb").mkdir()
    with pytest.raises(GTRError, match="is a folder"):
        write_mesh(baked[2], tmp_path / "folder.glb")


def test_two_objs_in_one_folder_keep_their_own_textures(tmp_path, baked):
    textured = baked[2]
    (tmp_path / "gtr_texture.png").write_bytes(b"the user's own file")
    red = Mesh(textured.vertices, textured.faces, uv=textured.uv, texture=torch.tensor([1.0, 0, 0]).expand(8, 8, 3))
    blue = Mesh(textured.vertices, textured.faces, uv=textured.uv, texture=torch.tensor([0, 0, 1.0]).expand(8, 8, 3))
    write_mesh(red, tmp_path / "red one.obj")
    write_mesh(blue, tmp_path / "blue.obj")
    for name, channel in (("red one.obj", 0), ("blue.obj", 2)):
        image = trimesh.load(tmp_path / name, force="mesh").visual.material.image
        assert np.asarray(image.convert("RGB"))[..., channel].min() == 255, name
    assert (tmp_path / "gtr_texture.png").read_bytes() == b"the user's own file"


@contextlib.contextmanager
def file_size_limit(size: int):
    """Files written in the block fail (EFBIG) past `size` bytes, as on a full disk or under a quota."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.parametrize("name", ["sphere.glb", "sphere.obj", "sphere.ply"])
def test_a_write_that_fails_part_way_leaves_the_old_file_whole(tmp_path, baked, monkeypatch, name):
    path = tmp_path / name
    write_mesh(baked[2], path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with file_size_limit(4096), pytest.raises(WriteError) as failed:  # the first 4 KiB land, then the write fails
        write_mesh(baked[2], path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old files whole, no leftovers
    message = str(failed.value)  # one line: the file, the cause, that the old one is kept
    assert "\n" not in message and str(tmp_path) in message and "File too large" in message
    assert message.endswith("the old one is kept")


def test_visible_surface_colours_match_the_views(baked):
    """Sanity check of the fixture: the views and the field agree roughly before any refinement."""
    _, colors, textured, views = baked
    surface = visible_surface(textured, views)
    with torch.no_grad():
        assert float((colors(surface.points) - surface.targets).abs().mean()) < 0.2


def test_written_files_get_the_usual_permissions(tmp_path, baked):
    """Atomic writes go through a temporary file; the result still has the permissions of a new file."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    write_mesh(baked[2], tmp_path / "new.glb")
    assert (tmp_path / "new.glb").stat().st_mode & 0o777 == 0o666 & ~mask
    (tmp_path / "new.glb").chmod(0o640)
    write_mesh(baked[2], tmp_path / "new.glb")  # replacing a file keeps its permissions
    assert (tmp_path / "new.glb").stat().st_mode & 0o777 == 0o640


def test_pull_push_fills_every_texel_from_the_nearest_chart():
    image = torch.zeros(64, 64, 3)
    filled = torch.zeros(64, 64, dtype=torch.bool)
    image[4:20, 4:20] = torch.tensor([1.0, 0.0, 0.0])  # a red chart
    image[40:60, 40:60] = torch.tensor([0.0, 0.0, 1.0])  # a blue one
    filled[4:20, 4:20] = filled[40:60, 40:60] = True
    out = pull_push(image, filled)
    assert torch.equal(out[filled], image[filled])  # covered texels untouched
    assert torch.allclose(out[20, 10], torch.tensor([1.0, 0.0, 0.0]))  # the gutter takes its own chart's colour
    assert torch.allclose(out[39, 50], torch.tensor([0.0, 0.0, 1.0]))
    assert bool((out.sum(-1) > 0.99).all())  # nothing left empty, no background mixed in
    # Two charts three texels apart: each one's border texels keep its own colour (bilinear reads them).
    image.zero_()
    filled.zero_()
    image[:, :4] = torch.tensor([1.0, 0.0, 0.0])
    image[:, 7:] = torch.tensor([0.0, 0.0, 1.0])
    filled[:, :4] = filled[:, 7:] = True
    out = pull_push(image, filled)
    assert torch.allclose(out[:, 4], torch.tensor([1.0, 0.0, 0.0])) and torch.allclose(
        out[:, 6], torch.tensor([0.0, 0.0, 1.0])
    )


def test_jpeg_textures_in_the_glb(tmp_path, baked):
    """`texture_format="jpeg"`: the GLB holds one JPEG texture that reads back close to the texture, and is
    smaller than the PNG one."""
    textured = baked[2]
    write_mesh(textured, tmp_path / "png.glb")
    write_mesh(textured, tmp_path / "jpeg.glb", texture_format="jpeg")
    glb = (tmp_path / "jpeg.glb").read_bytes()
    tree = json.loads(glb[20 : 20 + int.from_bytes(glb[12:16], "little")])
    assert [image["mimeType"] for image in tree["images"]] == ["image/jpeg"]  # one texture, written once
    image = trimesh.load(tmp_path / "jpeg.glb", force="mesh").visual.material.baseColorTexture
    read = torch.tensor(np.asarray(image.convert("RGB")), dtype=torch.float32) / 255
    assert 10 * np.log10(1 / float(((read - textured.texture) ** 2).mean())) > 30
    assert (tmp_path / "jpeg.glb").stat().st_size < (tmp_path / "png.glb").stat().st_size
    with pytest.raises(GTRError, match="unknown texture format"):
        write_mesh(textured, tmp_path / "x.glb", texture_format="webp")


def test_the_glb_has_smooth_normals_across_uv_seams(tmp_path, baked):
    """Without normals a viewer shades a GLB flat; with per-vertex normals that differ on the two sides of a
    UV seam it shows the seams. The file carries one normal per position (read from the file itself)."""
    textured = baked[2]
    write_mesh(textured, tmp_path / "smooth.glb")
    glb = (tmp_path / "smooth.glb").read_bytes()
    length = int.from_bytes(glb[12:16], "little")
    tree, binary = json.loads(glb[20 : 20 + length]), glb[20 + length + 8 :]

    def attribute(name: str) -> np.ndarray:
        accessor = tree["accessors"][tree["meshes"][0]["primitives"][0]["attributes"][name]]
        start = tree["bufferViews"][accessor["bufferView"]].get("byteOffset", 0) + accessor.get("byteOffset", 0)
        return np.frombuffer(binary[start : start + accessor["count"] * 12], dtype=np.float32).reshape(-1, 3)

    normals, positions = attribute("NORMAL"), np.round(attribute("POSITION"), 6)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-4)
    _, first, index = np.unique(positions, axis=0, return_index=True, return_inverse=True)
    assert len(first) < len(positions)  # there are seams (split vertices) to check
    assert np.abs(normals - normals[first][index.reshape(-1)]).max() < 1e-4  # one normal on both sides of a seam
