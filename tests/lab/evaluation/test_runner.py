import json

import pytest
import torch

from gtr_backend.cli import main
from gtr_backend.errors import GTRError
from gtr_backend.export import write_mesh
from gtr_backend.render.raster import TorchRasterizer
from gtr_backend.views import save_views
from gtr_backend.weights import find_default_weights
from gtr_lab.evaluation import runner
from gtr_lab.evaluation.protocol import EvalProtocol, load_mesh_file, procedural_asset
from gtr_lab.evaluation.runner import find_assets
from gtr_lab.synthetic.evalset import bake_object, book, checker_cube

TINY = [
    "--size",
    "48",
    "--eval-views",
    "3",
    "--mesh-resolution",
    "32",
    "--refine-steps",
    "2",
    "--texture-size",
    "64",
    "--surface-points",
    "2000",
    "--device",
    "cpu",
    "--quiet",
]


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory):
    """Two procedural objects of the shipped evaluation set, baked into textured GLBs."""
    folder = tmp_path_factory.mktemp("evalset")
    for obj in (book(), checker_cube()):
        write_mesh(bake_object(obj, texture_size=256), folder / f"{obj.name}.glb")
    return folder


@pytest.mark.skipif(find_default_weights() is None, reason="this copy has no bundled weights")
def test_gtr_eval_end_to_end_and_resume(eval_folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    assert main(["eval", str(eval_folder), "-o", str(out), *TINY]) == 0
    report = json.loads((out / "results.json").read_text())
    assert set(report["assets"]) == {"book", "checker-cube"}
    assert list(report["mean"]) == ["feed-forward", "refined", "nerf", "visual-hull"]
    for asset in report["assets"].values():
        assert 5 < asset["refined"]["psnr"] < 60 and 0 < asset["refined"]["ssim"] <= 1
        assert asset["refined"]["lpips"] is None  # no LPIPS weights given: never a made-up number
        # Chamfer in the paper's frame, [-1, 1]^3 (the checker cube's hull at these tiny settings: about 20).
        assert asset["visual-hull"]["iou"] > 0.5 and asset["visual-hull"]["chamfer_x100"] < 25
        assert asset["nerf"]["iou"] is None
    table = (out / "results.md").read_text()
    assert "| refined | gtr-small-starter.safetensors |" in table and "n/a" in table
    from PIL import Image

    sheet = Image.open(out / "sheets" / "book.png")
    assert sheet.height == 160 * 7  # inputs, truth, 4 variants, normals
    # Interrupt-and-rerun: finished assets are not evaluated again; changed settings are.
    calls = []
    real = runner.evaluate_asset
    monkeypatch.setattr(runner, "evaluate_asset", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    (out / "assets" / "book.json").unlink()
    assert main(["eval", str(eval_folder), "-o", str(out), *TINY]) == 0
    assert calls == ["book"]
    assert main(["eval", str(eval_folder), "-o", str(out), *TINY, "--variants", "visual-hull"]) == 0
    assert calls == ["book", "book", "checker-cube"]
    assert list(json.loads((out / "results.json").read_text())["mean"]) == ["visual-hull"]


@pytest.mark.skipif(find_default_weights() is None, reason="this copy has no bundled weights")
def test_results_page_is_built_from_measurement_files(eval_folder, tmp_path):
    out, results = tmp_path / "run", tmp_path / "results"
    results.mkdir()
    assert main(["eval", str(eval_folder / "book.glb"), "-o", str(out), *TINY, "--variants", "refined"]) == 0
    (out / "results.json").rename(results / "eval-cpu.json")
    other = tmp_path / "other"
    args = ["--variants", "refined", "--no-geometry-refine", "--label", "network as is"]
    assert main(["eval", str(eval_folder / "book.glb"), "-o", str(other), *TINY, *args]) == 0
    (other / "results.json").rename(results / "compare-cpu-network.json")
    (results / "notes-1-training.md").write_text("## How the weights were trained\n\nBy hand.\n")
    page_path = tmp_path / "RESULTS.md"
    assert main(["report", str(results), "-o", str(page_path)]) == 0
    page = page_path.read_text()
    measured = json.loads((results / "eval-cpu.json").read_text())["mean"]["refined"]["psnr"]
    assert f"| refined | gtr-small-starter.safetensors | {measured:.2f} |" in page
    assert "Commands: `gtr eval" in page and "--variants refined" in page
    assert "| GTR feed-forward | 28.67 | 0.946 |" in page and "not measured here" in page
    assert page.rstrip().endswith("By hand.")
    # The comparison names each configuration and the command that measured it, with its mask IoU.
    compared = json.loads((results / "compare-cpu-network.json").read_text())
    assert compared["options"]["geometry_refine"] is False and compared["label"] == "network as is"
    row = f"| network as is | refined | {compared['mean']['refined']['psnr']:.2f} |"
    assert row in page and "--no-geometry-refine --label 'network as is'" in page


def test_finds_meshes_gso_folders_and_rendered_view_sets(eval_folder, tmp_path):
    folder = tmp_path / "mixed"
    (folder / "cube" / "meshes").mkdir(parents=True)
    (folder / "cube" / "materials" / "textures").mkdir(parents=True)
    glb = load_mesh_file(eval_folder / "checker-cube.glb")
    write_mesh(glb, folder / "cube" / "meshes" / "model.obj")
    # GSO keeps the texture two folders up from the OBJ, where trimesh does not look.
    for image in (folder / "cube" / "meshes").glob("*.png"):
        image.rename(folder / "cube" / "materials" / "textures" / "texture.png")
    write_mesh(glb, folder / "plain.ply")
    asset = procedural_asset(book(), TorchRasterizer())
    protocol = EvalProtocol(size=48, eval_views=3)
    inputs, truth = asset.views(protocol, torch.device("cpu"))
    save_views(inputs, folder / "rendered" / "inputs")
    save_views(truth, folder / "rendered" / "eval")
    found = {a.name: a for a in find_assets(folder, TorchRasterizer())}
    assert set(found) == {"cube", "plain", "rendered"}
    assert found["cube"].mesh is not None and found["cube"].mesh.texture is not None
    assert found["rendered"].mesh is None
    again_inputs, again_truth = found["rendered"].views(protocol, torch.device("cpu"))
    assert torch.allclose(again_truth.c2w, truth.c2w, atol=1e-5)
    assert (again_inputs.rgb - inputs.rgb).abs().max() < 2 / 255


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(GTRError, match="found no assets"):
        find_assets(tmp_path, TorchRasterizer())
    with pytest.raises(GTRError, match="no such folder"):
        find_assets(tmp_path / "nope", TorchRasterizer())


def test_retrained_weights_under_the_same_name_are_evaluated_again(tmp_path):
    """The cache key holds the weights' content, not just their file name."""
    from gtr_backend.reconstruction import ReconstructOptions
    from gtr_lab.evaluation.protocol import EvalProtocol
    from gtr_lab.evaluation.runner import EvalSettings, content_digest

    first, second = tmp_path / "a" / "w.safetensors", tmp_path / "b" / "w.safetensors"
    for path, data in ((first, b"weights, first training"), (second, b"weights, retrained")):
        path.parent.mkdir()
        path.write_bytes(data)
    settings = [
        EvalSettings(EvalProtocol(), ReconstructOptions(), "w.safetensors", False, content_digest(p))
        for p in (first, second)
    ]
    assert settings[0].fingerprint() != settings[1].fingerprint()
    assert content_digest(first) == content_digest(first)


def test_eval_on_two_devices_records_what_each_made_of_the_automatic_settings(eval_folder, tmp_path, capsys):
    """`gtr eval` on CUDA and on the CPU compares like with like when the grid is given (the one setting whose
    default depends on the device); each report says what its device used. --assets bounds a run."""
    from gtr_backend.reconstruction import ReconstructOptions
    from gtr_lab.cli.evaluate import device_settings

    automatic, given = ReconstructOptions(), ReconstructOptions(mesh_resolution=128)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert device_settings(cuda, automatic, "nvdiffrast")["mesh_resolution"] == 256
    assert device_settings(cpu, automatic, "torch")["mesh_resolution"] == 128
    on_cuda, on_cpu = device_settings(cuda, given, "torch"), device_settings(cpu, given, "torch")
    assert on_cuda["mesh_resolution"] == on_cpu["mesh_resolution"] == 128
    assert (on_cuda["precision"], on_cpu["precision"]) == ("bf16", "fp32")  # the GPU path's own, recorded
    out = tmp_path / "run"
    args = ["eval", str(eval_folder), "-o", str(out), *TINY, "--variants", "visual-hull", "--assets", "book"]
    assert main(args) == 0
    report = json.loads((out / "results.json").read_text())
    assert list(report["assets"]) == ["book"]
    assert report["device_settings"] == {
        "device": "cpu",
        "mesh_resolution": 32,
        "precision": "fp32",
        "rasterizer": "torch",
        "marching_cubes": "torch",
    }
    assert "On cpu: marching-cubes grid 32, network in fp32, torch rasterizer" in (out / "results.md").read_text()
    capsys.readouterr()
    assert main(["eval", str(eval_folder), "-o", str(out), *TINY, "--assets", "boko"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == "gtr: error: no asset named boko in the folder; it has book, checker-cube"
