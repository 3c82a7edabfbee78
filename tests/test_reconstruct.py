import json

import pytest
import torch
import trimesh

from gtr_backend.cli import main
from gtr_backend.devices import resolve_device
from gtr_backend.errors import CancelledError, GTRError
from gtr_backend.mesh import MeshError
from gtr_backend.model import GTR, preset
from gtr_backend.reconstruction import ReconstructOptions, reconstruct, reconstruct_from_triplane
from gtr_backend.views import save_views
from gtr_backend.views.sphere import sphere_views
from gtr_backend.weights import save_weights

FAST = ReconstructOptions(mesh_resolution=48, texture_size=256, refine_steps=10)


def test_stages_after_the_network_make_a_textured_mesh_in_place(fitted_sphere, tmp_path):
    field, triplane, views = fitted_sphere
    events = []
    result = reconstruct_from_triplane(field, triplane, views, FAST, progress=lambda s, f: events.append((s, f)))
    fractions = [f for _, f in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"carve", "geometry fit", "refine", "unwrap", "bake"} <= set(result.timings)
    assert result.fidelity is not None
    assert min(result.fidelity.mask_iou_per_view) >= 0.97  # the mesh covers every view's mask
    assert result.refinement is not None and result.refinement.psnr_after > result.refinement.psnr_before
    mesh = result.mesh
    assert mesh.uv is not None and mesh.texture is not None and mesh.texture.shape == (256, 256, 3)
    assert (mesh.vertices.norm(dim=-1) - 0.6).abs().max() < 0.06  # where the sphere is
    written = result.save(tmp_path / "out.glb")
    assert len(trimesh.load(written[0], force="mesh").faces) == mesh.num_faces
    assert "export" in result.timings


def test_vertex_colours_and_no_refinement(fitted_sphere):
    """Every refinement off: the network's own shape (a dense density grid) and its own colours per vertex."""
    field, triplane, views = fitted_sphere
    options = ReconstructOptions(
        mesh_resolution=32, refine_steps=0, vertex_colors=True, geometry_refine=False, texture_from_views=False
    )
    result = reconstruct_from_triplane(field, triplane, views, options)
    assert result.refinement is None and "unwrap" not in result.timings
    assert {"density grid", "marching cubes"} <= set(result.timings) and "carve" not in result.timings
    assert result.mesh.vertex_colors is not None and result.mesh.vertex_colors.shape == (result.mesh.num_vertices, 3)


def test_cancel_stops_between_stages(fitted_sphere):
    """Cancel once the carve has started: the stages after it never run."""
    field, triplane, views = fitted_sphere
    stages: list[str] = []

    def cancel() -> bool:
        return "carve" in stages

    with pytest.raises(CancelledError, match="cancelled"):
        reconstruct_from_triplane(field, triplane, views, FAST, progress=lambda s, f: stages.append(s), cancel=cancel)
    assert "carve" in stages
    assert not {"marching cubes", "geometry fit", "refine", "unwrap", "bake"} & set(stages), stages


def test_an_untrained_model_gives_a_clear_error_not_an_empty_file(fitted_sphere):
    _, _, views = fitted_sphere
    model = GTR(preset("gtr-tiny"))
    with pytest.raises(MeshError, match="never reaches the surface level"):
        reconstruct(views, model, "cpu", FAST)


def test_device_errors():
    if not torch.cuda.is_available():
        with pytest.raises(GTRError, match="CUDA was requested"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"
    for name in ("tpu", "mps", "meta", "", "cuda:x"):
        with pytest.raises(GTRError, match="device|CUDA"):
            resolve_device(name)
    with pytest.raises(GTRError, match="texture size"):
        ReconstructOptions(texture_size=8192)


def test_command_errors_are_plain(tmp_path, capsys, fitted_sphere):
    _, _, views = fitted_sphere
    save_views(views, tmp_path / "views")
    weights = tmp_path / "tiny.safetensors"
    save_weights(GTR(preset("gtr-tiny")), weights)
    (tmp_path / "folder.safetensors").mkdir()
    cases = [
        (["--weights", str(tmp_path / "none.safetensors")], "none.safetensors: weights file not found"),
        (["--weights", str(tmp_path / "folder.safetensors")], "folder.safetensors is a folder; give the weights file"),
        (["--weights", str(weights)], "never reaches the surface level"),
        (["--weights", str(weights), "-o", str(tmp_path / "x.fbx")], "unknown mesh format"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--weights", str(weights), "--device", "cuda"], "CUDA was requested"))
    for extra, message in cases:
        args = ["reconstruct", str(tmp_path / "views"), "-o", str(tmp_path / "out.glb"), "--quiet", *extra]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_the_output_is_checked_before_any_work(tmp_path, capsys, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the run started before its output was checked")

    monkeypatch.setattr("gtr_backend.reconstruction.reconstruct", no_work)
    monkeypatch.setattr("gtr_backend.weights.load_released_checkpoint", no_work)
    (tmp_path / "taken.glb").mkdir()
    (tmp_path / "taken.safetensors").mkdir()
    (tmp_path / "file").write_text("x")
    views = tmp_path / "views"
    save_views(sphere_views(size=32), views)
    cases = [
        (["reconstruct", str(views), "-o", str(tmp_path / "taken.glb")], "is a folder"),
        (["reconstruct", str(views), "-o", str(tmp_path / "file" / "out.glb")], "does not exist"),
        (["convert-weights", str(tmp_path / "ckpt.pth"), str(tmp_path / "w.glb")], "unknown weights format"),
        (["convert-weights", str(tmp_path / "ckpt.pth"), str(tmp_path / "taken.safetensors")], "is a folder"),
        (["convert-weights", str(tmp_path / "ckpt.pth"), str(tmp_path / "no" / "w.safetensors")], "does not exist"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_json_summary_of_a_run(tmp_path, capsys, monkeypatch, fitted_sphere):
    """`gtr reconstruct --json` with a model whose triplane is the fitted sphere's."""
    field, triplane, views = fitted_sphere
    save_views(views, tmp_path / "views")
    model = GTR(preset("gtr-tiny", triplane_channels=16, plane_tokens=16, mlp_width=32))
    model.field.load_state_dict(field.state_dict())
    weights = tmp_path / "model.safetensors"
    save_weights(model, weights)
    monkeypatch.setattr("gtr_backend.reconstruction.predict_triplane", lambda *args: triplane)
    code = main(
        [
            "reconstruct",
            str(tmp_path / "views"),
            "-o",
            str(tmp_path / "out.glb"),
            "--weights",
            str(weights),
            "--mesh-resolution",
            "40",
            "--texture-size",
            "128",
            "--refine-steps",
            "5",
            "--device",
            "cpu",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == [str(tmp_path / "out.glb")] and summary["device"] == "cpu"
    assert summary["faces"] > 1000 and summary["total_s"] > 0
    assert set(summary["timings_s"]) >= {
        "load weights",
        "triplane",
        "carve",
        "geometry fit",
        "refine",
        "bake",
        "export",
    }
    assert len(summary["fidelity"]["mask_iou_per_view"]) == 4 and "silhouette_iou" not in summary
    assert summary["refine_psnr_after"] > summary["refine_psnr_before"]


def test_out_of_gpu_memory_says_what_to_lower(fitted_sphere, monkeypatch):
    field, triplane, views = fitted_sphere

    def exhausted(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("gtr_backend.reconstruction.carve_and_fill", exhausted)
    with pytest.raises(GTRError, match="out of GPU memory during 'carve': try again with mesh resolution") as raised:
        reconstruct_from_triplane(field, triplane, views, FAST)
    lower = raised.value.retry_options  # type: ignore[attr-defined]
    assert 0 < lower["mesh_resolution"] < FAST.resolution(torch.device("cpu"))


def test_many_views_stay_bounded_and_held_out_views_are_only_scored(tmp_path):
    """The bundled four views repeated 25 times: the shape and texture use at most MAX_FIT_VIEWS of them (the
    result says so) and the network its four. A held-out view with colours the object does not have gets
    scored, and its colour appears nowhere on the result."""
    from gtr_backend.contract import MAX_FIT_VIEWS
    from gtr_backend.views import ViewSet, load_views
    from gtr_backend.weights import find_default_weights

    toy = load_views("examples/toy")
    many = toy.select(list(range(4)) * 25)
    options = ReconstructOptions(mesh_resolution=48, texture_size=256, refine_steps=2, geometry_steps=3)
    result = reconstruct(many, find_default_weights(), "cpu", options)
    assert any(f"use {MAX_FIT_VIEWS} of them" in note for note in result.notes), result.notes
    # A fifth view, held out, painted magenta inside its mask.
    extra = toy.select([0, 1, 2, 3, 1])
    rgb = extra.rgb.clone()
    rgb[4] = torch.tensor([1.0, 0.0, 1.0])[:, None, None]
    marked = ViewSet.from_tensors(rgb, extra.mask, extra.intrinsics, extra.c2w, held_out=[0, 0, 0, 0, 1])
    scored = reconstruct(marked, find_default_weights(), "cpu", options)
    fidelity = scored.fidelity
    assert fidelity is not None and fidelity.held_out_views == 1 and fidelity.held_out_psnr is not None
    assert fidelity.held_out_psnr < fidelity.psnr - 3  # the magenta view does not match, the others do
    texture = scored.mesh.texture
    assert texture is not None
    magenta = (texture[..., 0] > 0.8) & (texture[..., 1] < 0.2) & (texture[..., 2] > 0.8)
    assert float(magenta.float().mean()) < 0.001


def test_depth_maps_make_the_surface_follow_the_object():
    """A box seen from 12 cameras all round with its depth, and a network that believes it is a ball (the fitted
    sphere): with the depth the result is the box, its size kept to about a grid step (0.032 here; measured
    at most 0.027 off), where from the same views without depth it came out 0.2 too tall."""
    from gtr_backend.mesh import Mesh
    from gtr_backend.render.mesh_render import seen_surface
    from gtr_backend.views import ViewSet
    from gtr_backend.views.cameras import intrinsics_from_fov, orbit_poses
    from gtr_lab.evaluation.metrics import chamfer_distance, sample_surface
    from gtr_lab.synthetic.fitting import fit_triplane, sphere_inside, stripes
    from gtr_lab.synthetic.objects import ProceduralObject, render_object

    cube = trimesh.creation.box(extents=(0.9, 0.7, 0.8))
    cube.apply_transform(trimesh.transformations.rotation_matrix(0.4, (0, 1, 0)))
    vertices, faces = trimesh.remesh.subdivide_to_size(cube.vertices, cube.faces, 0.08)
    box = Mesh(torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces))
    azimuths = [0.0, 90.0, 180.0, 270.0, 0.0, 0.0, 45.0, 135.0, 225.0, 315.0, 90.0, 270.0]
    elevations = [20.0] * 4 + [88.0, -88.0] + [50.0] * 4 + [-25.0] * 2
    c2w = orbit_poses(azimuths, elevations, 2.7).float()
    k = intrinsics_from_fov(40.0, 128, 128).float().expand(12, 4)
    plain = render_object(ProceduralObject(box, lambda p: torch.full_like(p, 0.6), "box"), k, c2w, 128, 128)
    depth = seen_surface(box, k, c2w, 128, 128).depth
    depth = torch.where(torch.isfinite(depth) & (plain.mask[:, 0] > 0.99), depth, torch.zeros_like(depth))
    field, triplane = fit_triplane(sphere_inside, stripes, steps=150, color_steps=5)
    options = ReconstructOptions(mesh_resolution=64, texture_size=128, refine_steps=0, geometry_steps=20)
    truth_points = sample_surface(box, 8000, seed=1)
    errors, sizes = {}, {}
    for with_depth in (False, True):
        views = ViewSet.from_tensors(plain.rgb, plain.mask, k, c2w, depth=depth[:, None] if with_depth else None)
        mesh = reconstruct_from_triplane(field, triplane, views, options).mesh
        errors[with_depth] = chamfer_distance(sample_surface(mesh, 8000, seed=2), truth_points)
        sizes[with_depth] = (mesh.vertices.max(0).values - mesh.vertices.min(0).values).tolist()
    print(f"Chamfer {errors[False]:.4f} without depth, {errors[True]:.4f} with; sizes {sizes}")
    truth_size = (box.vertices.max(0).values - box.vertices.min(0).values).tolist()
    assert errors[True] < 0.5 * errors[False]
    assert all(abs(a - b) < 0.035 for a, b in zip(sizes[True], truth_size, strict=True)), (sizes, truth_size)
