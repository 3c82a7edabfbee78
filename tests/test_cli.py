import json
import subprocess
import sys
import time

import pytest
import torch

from gtr_backend.cli import main
from gtr_backend.views import save_views
from gtr_backend.views.sphere import sphere_views


def test_views_command_summarises_cameras(tmp_path, capsys):
    save_views(sphere_views(size=32, distance=2.5), tmp_path)
    assert main(["views", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 views, 32x32" in out and out.count("distance 2.500") == 4


def test_errors_are_one_plain_line(tmp_path):
    """Run as a real process: the message names the folder and the fix, and no traceback is printed."""
    (tmp_path / "a.png").write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "gtr_backend.cli", "views", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "cameras are unknown" in result.stderr and "--orbit" in result.stderr
    assert "Traceback" not in result.stderr


def test_bench_command_reports_times_and_memory(tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--model-only",
            "--presets",
            "gtr-tiny",
            "--device",
            "cpu",
            "--size",
            "64",
            "--repeats",
            "2",
            "--json",
            str(out_json),
            "--markdown",
            str(tmp_path / "bench.md"),
        ]
    )
    assert code == 0
    results = json.loads(out_json.read_text())["results"]
    assert len(results) == 1 and results[0]["case"]["preset"] == "gtr-tiny"
    assert results[0]["median_ms"]["triplane"] > 0 and results[0]["peak_memory_mb"] > 10
    assert "| gtr-tiny |" in capsys.readouterr().out


def test_bench_pipeline_reports_every_stage(tmp_path, capsys):
    out_json = tmp_path / "pipeline.json"
    args = [
        "bench",
        "--presets",
        "gtr-tiny",
        "--device",
        "cpu",
        "--size",
        "64",
        "--mesh-resolution",
        "32",
        "--refine-steps",
        "2",
        "--texture-size",
        "64",
        "--repeats",
        "1",
        "--no-requests",
        "--json",
        str(out_json),
    ]
    started = time.perf_counter()
    assert main(args) == 0
    wall = time.perf_counter() - started
    run = json.loads(out_json.read_text())["runs"][0]
    assert (run["case"]["mesh_resolution"], run["case"]["refine_steps"], run["case"]["texture_size"]) == (32, 2, 64)
    stages = (
        "encode",
        "transformer",
        "upsample",
        "carve",
        "geometry fit",
        "refine (per step)",
        "unwrap",
        "bake",
        "export",
    )
    for stage in stages:
        assert run["median_s"][stage] > 0 and run["cold_s"][stage] > 0, stage
    # The total is measured around the whole run, not summed from the stages: it covers them and fits
    # inside the command's own wall time (which adds the process start).
    derived = ("total", "refine (per step)", "unwrap + bake + export")
    stages_sum = sum(v for k, v in run["median_s"].items() if k not in derived)
    cold = run["cold_s"]
    assert cold["unwrap + bake + export"] == pytest.approx(cold["unwrap"] + cold["bake"] + cold["export"])
    assert stages_sum <= run["median_s"]["total"] * 1.05 and run["median_s"]["total"] < wall
    assert run["peak_memory_mb"] > 10
    assert "| transformer |" in capsys.readouterr().out


def test_bench_times_the_backend_servers_requests_cold_and_warm(tmp_path, capsys):
    """What the add-on gets: a fresh server process (cold: process start to the GLB of its first request) and
    the next request (warm), with the server's warm-up step by step; the file `gtr report` shows."""
    results = tmp_path / "results"
    results.mkdir()
    args = ["bench", "--requests-only", "--device", "cpu", "--size", "64", "--mesh-resolution", "32"]
    args += ["--refine-steps", "2", "--texture-size", "128", "--repeats", "1"]
    args += ["--json", str(results / "bench-cpu.json")]
    assert main(args) == 0
    info = json.loads((results / "bench-cpu.json").read_text())
    assert info["date"] and info["torch"] and info["python"] and info["runs"] == []
    (request,) = info["requests"]
    assert "CPU" in request["device_name"] and (request["rasterizer"], request["marching_cubes"]) == ("torch", "torch")
    assert request["case"]["kernels"].startswith("PyTorch only") and request["case"]["options"]["mesh_resolution"] == 32
    assert 0 < request["handshake_s"] < request["cold_s"] and 0 < request["cold_request_s"] <= request["cold_s"]
    assert request["warm_s"] > 0 and request["faces"] > 100 and request["warm_stages_s"]["carve"] > 0
    assert {"import torch", "import backend", "read", "construct", "to device"} <= set(request["warm_up_s"])
    assert "| cold s |" in capsys.readouterr().out
    assert main(["report", str(results), "-o", str(tmp_path / "RESULTS.md")]) == 0
    page = (tmp_path / "RESULTS.md").read_text()
    assert "Where the cold start goes" in page and "| cpu, PyTorch only" in page


def test_bench_training_reports_throughput_and_memory(tmp_path, capsys):
    out_json = tmp_path / "training.json"
    args = [
        "bench",
        "--training",
        "--presets",
        "gtr-tiny",
        "--device",
        "cpu",
        "--batch",
        "2",
        "--repeats",
        "2",
        "--json",
        str(out_json),
    ]
    assert main(args) == 0
    run = json.loads(out_json.read_text())["runs"][0]
    assert (run["case"]["batch"], run["case"]["steps"]) == (2, 4)
    assert run["objects_per_second"] > 0 and run["seconds_per_step"] > 0 and run["peak_memory_mb"] > 10
    assert "| gtr-tiny |" in capsys.readouterr().out


def test_views_with_fewer_than_four_is_an_error(tmp_path, capsys):
    save_views(sphere_views(size=32).select([0]), tmp_path)
    assert main(["views", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "1 views, 32x32" in captured.out and "needs at least 4 views" in captured.err


def test_orbit_options_that_go_unused_are_named(tmp_path, capsys):
    save_views(sphere_views(size=32), tmp_path)
    assert main(["views", str(tmp_path), "--orbit", "--elevation", "45"]) == 0
    err = capsys.readouterr().err
    assert "has its own cameras (cameras.json); --orbit --elevation ignored" in err
    assert main(["views", str(tmp_path), "--azimuths", "0,90,180,270"]) == 0
    assert "--azimuths ignored" in capsys.readouterr().err


def test_progress_in_a_log_is_one_line_per_stage(tmp_path, fitted_sphere):
    """stderr is a file here, not a terminal: stage names on their own lines, no carriage returns."""
    from gtr_backend.model import GTR, preset
    from gtr_backend.weights import save_weights

    field, triplane, views = fitted_sphere
    save_views(views, tmp_path / "views")
    model = GTR(preset("gtr-tiny", triplane_channels=16, plane_tokens=16, mlp_width=32))
    model.field.load_state_dict(field.state_dict())
    save_weights(model, tmp_path / "model.safetensors")
    torch.save(triplane, tmp_path / "triplane.pt")
    script = (
        "import sys, torch; import gtr_backend.reconstruction as r; "
        f"t = torch.load({str(tmp_path / 'triplane.pt')!r}, weights_only=True); r.predict_triplane = lambda *a: t; "
        "from gtr_backend.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = ["reconstruct", str(tmp_path / "views"), "-o", str(tmp_path / "out.glb"), "--weights"]
    args += [str(tmp_path / "model.safetensors"), "--mesh-resolution", "32", "--texture-size", "64"]
    result = subprocess.run(
        [sys.executable, "-c", script, *args, "--refine-steps", "2"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    assert "carve..." in lines and "bake..." in lines and len(lines) == len(set(lines))


def test_numbers_that_are_not_finite_are_refused_in_one_line(tmp_path):
    """--elevation inf, an azimuth of 1e309: exit 2 with the option named, no traceback."""
    import subprocess
    import sys

    for arguments in (["--elevation", "inf"], ["--azimuths", "1e309,0,90,180"], ["--fov", "nan"]):
        done = subprocess.run(
            [sys.executable, "-m", "gtr_backend.cli", "reconstruct", "examples/toy", "--orbit", *arguments, "-o",
             str(tmp_path / "x.glb")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"argument {arguments[0]}: expected finite" in done.stderr or "expected a finite" in done.stderr
