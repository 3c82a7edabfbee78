"""Game-ready results from a capture with depth and material passes: the shape fused from depth, simplified by
error (Faces: Auto), roughness and metallic baked beside the base colour and written into the GLB, levels of
detail as a chain of nodes and job files; the command line's --faces auto and --lods."""

import itertools
import json
import struct

import numpy as np
import pytest
import torch
import trimesh
from captures import capture, open_edges, sphere
from PIL import Image

from gtr_backend.contract import JOB_ARRAYS, JOB_MATERIAL, job_lod_file
from gtr_backend.reconstruction import ReconstructOptions, reconstruct_from_triplane
from gtr_backend.server.jobs import write_job
from gtr_backend.views import load_views, save_views

GOLD, PLASTIC = (0.25, 1.0), (0.9, 0.0)  # (roughness, metallic): x > 0 gold metal, x < 0 blue plastic


def halves(points: torch.Tensor) -> torch.Tensor:
    gold = (points[:, :1] > 0).float()
    return gold * torch.tensor(GOLD) + (1 - gold) * torch.tensor(PLASTIC)


@pytest.fixture(scope="module")
def made(fitted_sphere, tmp_path_factory):
    """A sphere captured with depth and a material pass (written and read back as a view folder), made with
    Faces: Auto and three levels of detail."""
    field, triplane, _ = fitted_sphere
    folder = tmp_path_factory.mktemp("capture")
    save_views(capture(sphere(0.7, 5), size=256, count=12, material=halves), folder)
    views = load_views(folder)
    options = ReconstructOptions(auto_faces=True, lods=3, texture_size=256, refine_steps=0)
    return reconstruct_from_triplane(field, triplane, views, options, originals=views), views


def test_a_result_that_matches_its_views_is_called_done(made):
    """The check a sheet with no thickness fails (`test_result_check`) passes a sphere."""
    result, _ = made
    assert result.fidelity.mask_iou > 0.95 and result.problem is None


def test_a_material_pass_survives_the_view_folder(made):
    _, views = made
    assert views.material is not None and views.depth is not None
    known = views.material[:, 2] > 0.5
    assert bool((known <= (views.mask[:, 0] > 0)).all()) and float(known.float().mean()) > 0.1


def test_roughness_and_metallic_are_baked_and_written_into_the_glb(made, tmp_path):
    result, _ = made
    mesh = result.mesh
    assert mesh.material_texture is not None and open_edges(mesh.faces, mesh.vertices) == 0
    path = tmp_path / "ball.glb"
    result.save(path)
    data = path.read_bytes()
    tree = json.loads(data[20 : 20 + struct.unpack_from("<I", data, 12)[0]])
    pbr = tree["materials"][0]["pbrMetallicRoughness"]
    assert "metallicRoughnessTexture" in pbr and pbr.get("metallicFactor", 1.0) == 1.0
    scene = trimesh.load(path)
    lod0 = scene.geometry["ball_LOD0"]
    image = np.asarray(lod0.visual.material.metallicRoughnessTexture.convert("RGB")).astype(np.float32) / 255
    h, w = image.shape[:2]
    uv = lod0.visual.uv
    texel = image[np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1), np.clip((uv[:, 0] * w).astype(int), 0, w - 1)]
    x = lod0.vertices[:, 0]
    for side, (roughness, metallic) in ((x > 0.1, GOLD), (x < -0.1, PLASTIC)):
        assert abs(texel[side, 1].mean() - roughness) < 0.1 and abs(texel[side, 2].mean() - metallic) < 0.1


def test_levels_of_detail_quarter_the_faces_and_are_written_as_a_chain(made, tmp_path):
    result, _ = made
    counts = [result.mesh.num_faces] + [lod.num_faces for lod in result.lods]
    assert len(counts) == 3, counts
    for larger, smaller in itertools.pairwise(counts):
        assert 0.15 * larger <= smaller <= 0.35 * larger, counts
    assert all(lod.material_texture is not None and open_edges(lod.faces, lod.vertices) == 0 for lod in result.lods)
    job = tmp_path / "job"
    files = write_job(job, result.mesh, result.colors, {"options": {}}, lods=result.lods)  # type: ignore[arg-type]
    for level in (1, 2):
        with np.load(job / job_lod_file(JOB_ARRAYS, level)) as arrays:
            assert len(arrays["faces"]) == counts[level]
        assert Image.open(job / job_lod_file(JOB_MATERIAL, level)).size[0] == 256 >> level
    assert {"lod1_npz", "lod2_npz", "material", "lod1_material", "glb"} <= set(files)


def test_faces_auto_and_lods_on_the_command_line():
    import argparse

    from gtr_backend.cli.common import add_reconstruct_options, options_from_arguments

    parser = argparse.ArgumentParser()
    add_reconstruct_options(parser)
    auto = options_from_arguments(parser.parse_args(["--faces", "auto", "--lods", "3"]))
    capped = options_from_arguments(parser.parse_args(["--faces", "auto:800"]))
    fixed = options_from_arguments(parser.parse_args(["--faces", "5000"]))
    assert (auto.auto_faces, auto.target_faces, auto.lods) == (True, 0, 3)
    assert (capped.auto_faces, capped.target_faces) == (True, 800)
    assert (fixed.auto_faces, fixed.target_faces) == (False, 5000)
    with pytest.raises(SystemExit):
        parser.parse_args(["--faces", "auto:many"])


def test_a_corrupt_depth_map_is_dropped_and_said(fitted_sphere):
    """One view's depth at 1e30 (a corrupt file) would carve the object away: its depth is not used, the
    result still matches every mask, and the notes name the view."""
    from gtr_backend.model import GTR, PRESETS
    from gtr_backend.reconstruction import reconstruct

    views = capture(sphere(0.7, 4), size=128, count=8)
    depth = views.depth.clone()
    depth[0][depth[0] > 0] = 1e30
    corrupt = views.__class__.from_tensors(views.rgb, views.mask, views.intrinsics, views.c2w, depth=depth)
    checked, notes = corrupt.checked_depth()
    assert checked.depth is not None and float(checked.depth[0].max()) == 0 and float(checked.depth[1].max()) > 0
    assert len(notes) == 1 and "view 0" in notes[0] and "depth was not used" in notes[0]
    model = GTR(PRESETS["gtr-small"])  # untrained: the shape comes from the depth
    result = reconstruct(corrupt, model, "cpu", ReconstructOptions(auto_faces=True, texture_size=128, refine_steps=0))
    assert any("view 0" in note for note in result.notes)
    assert result.fidelity is not None and result.fidelity.mask_iou > 0.9


def test_a_capture_is_textured_one_view_per_face_by_default(fitted_sphere):
    """Texture views "auto" (the default): a capture's shape comes from its own depth, so each face takes the one
    view that sees it best (`refine.labelling`) rather than a blend of every view that sees it."""
    field, triplane, _ = fitted_sphere
    views = capture(sphere(0.7, 5), size=128, count=8, color=lambda p: 0.5 + 0.4 * torch.sin(p * 9))
    textures = {}
    for how in ("auto", "blend", "best"):
        options = ReconstructOptions(auto_faces=True, texture_size=256, refine_steps=0, texture_views=how)
        textures[how] = reconstruct_from_triplane(field, triplane, views, options, originals=views).mesh.texture
    assert torch.equal(textures["auto"], textures["best"]) and not torch.equal(textures["auto"], textures["blend"])
