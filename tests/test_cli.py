import json
import subprocess
import sys

from gtr_backend.cli import main
from gtr_backend.synthetic import sphere_views
from gtr_backend.views import save_views


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
        "--json",
        str(out_json),
    ]
    assert main(args) == 0
    run = json.loads(out_json.read_text())["runs"][0]
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
    total = sum(v for k, v in run["median_s"].items() if k not in ("total", "refine (per step)"))
    assert abs(run["median_s"]["total"] - total) < 1e-9
    assert run["peak_memory_mb"] > 10
    assert "| transformer |" in capsys.readouterr().out


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
    assert run["objects_per_second"] > 0 and run["seconds_per_step"] > 0 and run["peak_memory_mb"] > 10
    assert "| gtr-tiny |" in capsys.readouterr().out
