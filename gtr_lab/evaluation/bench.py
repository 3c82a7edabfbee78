"""Speed and memory: the feed-forward model (4 views at 512x512 in, triplane out), every stage from views to GLB,
requests to the backend server (cold and warm), and training steps.

Each case (preset, device, precision) runs in a fresh child process, so its peak memory is its own:
CUDA peak = torch.cuda.max_memory_allocated; CPU peak = the child's maximum resident set size.
Times are the median of `repeats` warm runs (after `warmup` runs), plus the first (cold) run; CUDA is synchronised.
Stages: `prepare` (resize 512x512 views to the model's resolution, rays, inputs) and `triplane` (network).
Optionally `render`: a 512x512 NeRF render of the triplane with 256 samples per ray.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

import gtr_backend
from gtr_backend.devices import device_label, peak_memory_mb, reset_peak_memory, synchronize
from gtr_backend.files import atomic_write
from gtr_backend.model import GTR, Precision, preset
from gtr_backend.reconstruction import ReconstructOptions, predict_triplane, prepare_inputs
from gtr_backend.render import VolumeOptions, render_triplane

from ..synthetic import sphere_views
from ..training.stage1 import Stage1Options
from .markdown import number, table


@dataclass(frozen=True)
class BenchCase:
    preset: str
    device: str
    precision: Precision = "auto"
    views: int = 4
    view_size: int = 512
    repeats: int = 10
    warmup: int = 2
    render: bool = False


@dataclass
class BenchResult:
    case: BenchCase
    parameters: int = 0
    cold_ms: dict[str, float] = field(default_factory=dict)
    median_ms: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float = 0.0
    device_name: str = ""


def _timed(fn: Callable[[], object], device: str, repeats: int, warmup: int) -> tuple[float, float]:
    """(cold ms, median warm ms) of fn."""

    def once() -> float:
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        return (time.perf_counter() - start) * 1000

    cold = once()
    for _ in range(warmup):
        once()
    return cold, statistics.median(once() for _ in range(repeats))


def run_case(case: BenchCase) -> BenchResult:
    """Run one case in this process (call through `run_isolated` for honest peak memory)."""
    torch.manual_seed(0)
    config = preset(case.preset)
    model = GTR(config).to(case.device).eval()
    views = sphere_views(tuple(360.0 * i / case.views for i in range(case.views)), size=case.view_size).to(case.device)
    result = BenchResult(case, parameters=model.num_parameters())
    result.device_name = device_label(case.device)
    reset_peak_memory(case.device)
    inputs = prepare_inputs(model, views)
    stages: dict[str, Callable[[], object]] = {
        "prepare": lambda: prepare_inputs(model, views),
        "triplane": lambda: model.triplane(inputs, case.precision),
    }
    if case.render:
        triplane = predict_triplane(model, views, case.precision)
        k, c2w = views.intrinsics[:1], views.c2w[:1]
        options = VolumeOptions()

        def render() -> object:
            with torch.no_grad():
                return render_triplane(model.field, triplane, k, c2w, case.view_size, case.view_size, options)

        stages["render"] = render
    for name, fn in stages.items():
        result.cold_ms[name], result.median_ms[name] = _timed(fn, case.device, case.repeats, case.warmup)
    result.peak_memory_mb = peak_memory_mb(case.device)
    return result


def run_isolated(case: BenchCase) -> BenchResult:
    """`run_case` in a fresh child process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_case, (case,))


def to_markdown(results: list[BenchResult]) -> str:
    return model_markdown([asdict(r) for r in results])


def model_markdown(rows: list[dict[str, Any]]) -> str:
    """The network-alone table from `BenchResult`s as dicts (what the JSON file holds)."""
    stages = [s for s in ("prepare", "triplane", "render") if any(s in r["median_ms"] for r in rows)]
    head = ["preset", "device", "precision", "params (M)"] + [f"{s} ms (cold)" for s in stages] + ["peak MB"]
    lines = []
    for r in rows:
        case = r["case"]
        cells = [case["preset"], r["device_name"], case["precision"], f"{r['parameters'] / 1e6:.1f}"]
        cells += [f"{r['median_ms'][s]:.1f} ({r['cold_ms'][s]:.0f})" if s in r["median_ms"] else "" for s in stages]
        cells.append(f"{r['peak_memory_mb']:.0f}")
        lines.append(cells)
    return table(head, lines)


def write_results(
    results: list[BenchResult], json_path: Path | None, markdown_path: Path | None, command: str = ""
) -> str:
    table = to_markdown(results)
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "command": command,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "results": [asdict(r) for r in results],
    }
    if json_path:
        atomic_write(json_path, json.dumps(info, indent=2) + "\n")
    if markdown_path:
        atomic_write(markdown_path, f"Measured {info['date']}, torch {info['torch']}.\n\n{table}")
    return table


@dataclass(frozen=True)
class PipelineCase:
    """Views to GLB on disk, stage by stage: the network on `preset` (random weights: its speed does not depend on
    them), split into encode / transformer / upsample; then the stages after it, run with `options`, on a
    triplane of the same sizes fitted to a sphere (random weights have no surface); then the GLB export."""

    preset: str
    device: str
    options: ReconstructOptions = field(default_factory=ReconstructOptions)
    view_size: int = 512
    repeats: int = 3

    def record(self) -> dict[str, Any]:
        """The case as the JSON results store it: one flat dict (the options beside preset and device)."""
        return {"preset": self.preset, "device": self.device, **asdict(self.options), "view_size": self.view_size}


def _network_stages(model: GTR, views: Any, device: torch.device) -> dict[str, float]:
    """Seconds for prepare / encode / transformer / upsample, synchronised on CUDA."""
    from gtr_backend.model.gtr import autocast

    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        synchronize(device)
        start = time.perf_counter()
        out = fn()
        synchronize(device)
        timings[name] = time.perf_counter() - start
        return out

    with torch.no_grad(), autocast(device, "auto"):
        inputs = timed("prepare inputs", lambda: prepare_inputs(model, views))
        tokens = timed("encode", lambda: model.encoder(inputs))
        planes = timed("transformer", lambda: model.transformer(tokens))
        timed("upsample", lambda: model.upsampler(planes))
    return timings


def run_pipeline(case: PipelineCase) -> dict[str, Any]:
    """Per-stage seconds: the first (cold) run and the median of `repeats` warm runs; peak memory; in one dict."""
    import tempfile

    from gtr_backend.reconstruction import reconstruct_from_triplane

    from ..synthetic.fitting import fit_triplane, sphere_inside, stripes
    from ..synthetic.objects import orbit_render, toy_object

    torch.manual_seed(0)
    device = torch.device(case.device)
    config = preset(case.preset)
    model = GTR(config).to(device).eval()
    field, fitted = fit_triplane(sphere_inside, stripes, config, steps=300, device=device)
    views = orbit_render(toy_object(), size=case.view_size).to(device)
    options = case.options
    runs: list[dict[str, float]] = []
    reset_peak_memory(device)
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(case.repeats + 1):
            start = time.perf_counter()
            timings = _network_stages(model, views, device)
            result = reconstruct_from_triplane(field, fitted, views.resized(config.image_size), options)
            result.save(Path(folder) / "out.glb")
            # Views to GLB on disk, measured around everything (untimed glue included), not summed.
            total = time.perf_counter() - start
            timings.update(result.timings)
            if options.refine_steps:
                timings["refine (per step)"] = timings["refine"] / options.refine_steps
            timings["unwrap + bake + export"] = sum(timings.get(k, 0.0) for k in ("unwrap", "bake", "export"))
            timings["total"] = total
            runs.append(timings)
    warm = runs[1:] or runs
    return {
        "case": case.record(),
        "device_name": device_label(device),
        "cold_s": runs[0],
        "median_s": {k: statistics.median(r[k] for r in warm) for k in warm[0]},
        "peak_memory_mb": peak_memory_mb(device),
        "faces": result.mesh.num_faces,
    }


def run_pipeline_isolated(case: PipelineCase) -> dict[str, Any]:
    """`run_pipeline` in a fresh child process (honest cold times and peak memory)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_pipeline, (case,))


def pipeline_markdown(results: list[dict[str, Any]]) -> str:
    """One table: a row per stage, a column per case, each cell `median warm ms (cold ms)`."""
    if not results:
        return ""
    order = [
        "prepare inputs",
        "encode",
        "transformer",
        "upsample",
        "density grid",
        "marching cubes",
        "carve",
        "simplify",
        "geometry fit",
        "clean",
        "refine",
        "refine (per step)",
        "unwrap",
        "bake",
        "export",
        "unwrap + bake + export",
        "score",
        "total",
    ]
    present = {s for r in results for s in r["median_s"]}
    stages = [s for s in order if s in present] + sorted(present - set(order))
    heads = [f"{r['case']['preset']}, grid {r['case']['mesh_resolution']}" for r in results]
    lines = [
        "Cases: "
        + "; ".join(
            f"**{h}** on {r['device_name']} ({r['faces']} faces, peak memory {r['peak_memory_mb']:.0f} MB)"
            for h, r in zip(heads, results, strict=True)
        ),
        "",
    ]
    rows = []
    for stage in stages:
        cells = [
            f"{r['median_s'][stage] * 1000:.1f} ({r['cold_s'][stage] * 1000:.0f})" if stage in r["median_s"] else ""
            for r in results
        ]
        rows.append([f"**{stage}**" if stage == "total" else stage, *cells])
    return "\n".join(lines) + "\n" + table(["stage: median ms (cold)", *heads], rows)


def throughput_options(**changes: Any) -> Stage1Options:
    """Stage-1 options for timing steps: 12 steps, one of learning-rate warm-up, no checkpoints or validation."""
    return Stage1Options(**{"steps": 12, "warmup": 1, "checkpoint_every": 0, "validate_every": 0, **changes})


@dataclass(frozen=True)
class TrainingCase:
    """Stage-1 training throughput: `options.steps` steps of `options.batch` objects, the first `untimed` not
    timed (no checkpoints or validation in between)."""

    preset: str
    device: str
    options: Stage1Options = field(default_factory=throughput_options)
    untimed: int = 2

    def record(self) -> dict[str, Any]:
        """The case as the JSON results store it: one flat dict (the options beside preset and device)."""
        return {"preset": self.preset, "device": self.device, **asdict(self.options), "untimed": self.untimed}


def run_training(case: TrainingCase) -> dict[str, Any]:
    """Objects per second over the timed steps and peak memory, for one process (one GPU)."""
    from ..training import RenderedPool, TrainingRun, ViewSampling, train

    device, options = torch.device(case.device), case.options
    config = preset(case.preset)
    pool = RenderedPool(range(max(4, options.batch)), ViewSampling(size=config.image_size), device)
    reset_peak_memory(device)
    stamps: list[float] = []

    def log(entry: dict[str, float]) -> None:
        synchronize(device)
        stamps.append(time.perf_counter())

    train(GTR(config), pool, options, device, TrainingRun(log=log))
    timed = stamps[case.untimed :]
    seconds = (timed[-1] - timed[0]) / max(1, len(timed) - 1)
    peak, name = peak_memory_mb(device), device_label(device)
    return {
        "case": case.record(),
        "device_name": name,
        "seconds_per_step": seconds,
        "objects_per_second": options.batch / seconds,
        "peak_memory_mb": peak,
    }


def run_training_isolated(case: TrainingCase) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_training, (case,))


def patch_note(case: dict[str, Any]) -> str:
    return f" (patches {case['patch']})" if case["patch"] else ""


def training_markdown(results: list[dict[str, Any]]) -> str:
    head = ["preset", "device", "batch", "rays x samples (patch)", "s / step", "objects / s", "peak MB"]
    rows = [
        [
            r["case"]["preset"],
            r["device_name"],
            str(r["case"]["batch"]),
            f"{r['case']['rays']} x {r['case']['samples']}{patch_note(r['case'])}",
            f"{r['seconds_per_step']:.3f}",
            f"{r['objects_per_second']:.2f}",
            f"{r['peak_memory_mb']:.0f}",
        ]
        for r in results
    ]
    return table(head, rows)


# ---------------------------------------------------------------------------------------------------------------
# Requests to the backend server, as the add-on makes them: cold (a fresh process) and warm.

OPTIONAL_KERNELS = ("nvdiffrast", "diso")  # the optional CUDA packages a request case can hide

# The backend server, with the optional CUDA packages hidden when the first argument says so (as Set Up Backend's
# environment has them: not installed).
SERVER_CHILD = """
import importlib.abc, sys
hidden = [name for name in sys.argv.pop(1).split(",") if name]  # the first argument: what to hide

class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hidden())
from gtr_backend.server import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class RequestCase:
    """Views to GLB on disk through the backend server (`gtr_backend.server`), as the add-on asks for it: the
    bundled example object's 4 views at `view_size`, `weights` (None: the bundled ones), the options' defaults.
    Cold: a fresh server process, its first request sent as soon as it answers the handshake (time from starting
    the process to the GLB on disk). Warm: the next `repeats` requests to the same, warmed process. `optional`:
    nvdiffrast and diso are used where installed; False hides them from the server, as for a backend set up
    without them."""

    device: str
    optional: bool = False
    weights: str | None = None
    view_size: int = 512
    repeats: int = 3
    options: tuple[tuple[str, Any], ...] = ()  # request options (name, value) other than the defaults

    def record(self) -> dict[str, Any]:
        kernels = "nvdiffrast and diso where installed" if self.optional else "PyTorch only (nvdiffrast, diso hidden)"
        return {**asdict(self), "kernels": kernels, "options": dict(self.options)}


def installed_optional_kernels() -> list[str]:
    """Which of the optional CUDA packages this Python has."""
    import importlib.util

    return [name for name in OPTIONAL_KERNELS if importlib.util.find_spec(name) is not None]


def run_requests(case: RequestCase) -> dict[str, Any]:
    """One request case (see `RequestCase`): seconds to the handshake, cold and warm; the server's warm-up steps
    and stage timings; the faces of the result."""
    import os
    import subprocess
    import sys
    import tempfile

    from gtr_backend.views import save_views

    from ..synthetic.objects import orbit_render, toy_object

    root = Path(gtr_backend.__file__).resolve().parents[1]  # the folder that holds gtr_backend
    with tempfile.TemporaryDirectory(prefix="gtr-bench-") as scratch:
        folder = Path(scratch)
        save_views(orbit_render(toy_object(), size=case.view_size), folder / "views")
        hidden = "" if case.optional else ",".join(OPTIONAL_KERNELS)
        command = [sys.executable, "-c", SERVER_CHILD, hidden, "--jobs-root", str(folder), "--device", case.device]
        command += ["--weights", case.weights] if case.weights else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        start = time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        try:
            return _measure_requests(case, process, folder, start)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def _measure_requests(case: RequestCase, process: Any, folder: Path, start: float) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    from gtr_backend.errors import GTRError

    def ask(rid: int, op: str, **fields: Any) -> dict[str, Any]:
        process.stdin.write(json.dumps({"id": rid, "op": op, **fields}) + "\n")
        process.stdin.flush()
        for line in process.stdout:
            message = json.loads(line)
            if message.get("id") == rid and message.get("type") in ("result", "error"):
                if message["type"] == "error":
                    raise GTRError(f"the backend failed the benchmark's {op} request: {message['message']}")
                return dict(message)
        raise GTRError(f"the backend process ended during the benchmark's {op} request (see its messages above)")

    views = {"path": str(folder / "views"), "orbit": None, "zero123pp": False}
    job = {"views": views, "device": case.device, "weights": case.weights, "options": dict(case.options)}
    hello = ask(1, "hello")
    handshake = time.perf_counter() - start
    sent = time.perf_counter()
    first = ask(2, "reconstruct", job=str(folder / "job-1"), **job)
    cold, cold_request = time.perf_counter() - start, time.perf_counter() - sent
    warm_up = ask(3, "load", device=case.device, weights=case.weights).get("warm_up") or {}
    warm, replies = [], []
    for index in range(case.repeats):
        sent = time.perf_counter()
        replies.append(ask(10 + index, "reconstruct", job=str(folder / f"job-{index + 2}"), **job))
        warm.append(time.perf_counter() - sent)
    ask(99, "shutdown")
    stages = {k: statistics.median(r["timings"][k] for r in replies) for k in replies[0]["timings"]} if replies else {}
    return {
        "case": case.record(),
        "device_name": hello["device"] if case.device.startswith("cuda") else device_label(case.device),
        "rasterizer": warm_up.get("rasterizer", "torch"),
        "marching_cubes": warm_up.get("marching_cubes", "torch"),
        "handshake_s": handshake,
        "cold_s": cold,
        "cold_request_s": cold_request,
        "cold_stages_s": first["timings"],
        "warm_s": warm[0] if warm else None,
        "warm_median_s": statistics.median(warm) if warm else None,
        "warm_stages_s": stages,
        "warm_up_s": warm_up.get("seconds", {}),
        "faces": first["faces"],
    }


def requests_markdown(results: list[dict[str, Any]]) -> str:
    """Two tables: per case the handshake, cold and warm seconds; then where the cold start's time goes."""
    if not results:
        return ""
    head = ["case", "rasterizer, marching cubes", "handshake s", "cold s", "warm s (2nd)", "warm s (median)", "faces"]
    rows = [
        [
            f"{r['case']['device']}, {r['case']['kernels']}",
            f"{r['rasterizer']}, {r['marching_cubes']}",
            f"{r['handshake_s']:.2f}",
            f"{r['cold_s']:.2f}",
            number(r["warm_s"], "{:.2f}"),
            number(r["warm_median_s"], "{:.2f}"),
            str(r["faces"]),
        ]
        for r in results
    ]
    steps = list(dict.fromkeys(step for r in results for step in r["warm_up_s"]))
    warm_up = [
        [f"{r['case']['device']}, {r['case']['kernels']}"] + [number(r["warm_up_s"].get(s), "{:.2f}") for s in steps]
        for r in results
    ]
    lines = [
        "Requests to the backend server as the add-on makes them: the example object's 4 views at 512x512 to a "
        "GLB on disk, bundled weights, default settings unless the case says otherwise. Cold: a fresh server "
        "process, its first request sent as "
        "soon as it answers the handshake (process start to GLB). Warm: the next requests to the warmed process.\n",
        table(head, rows),
        "Where the cold start goes: the server's warm-up, step by step (seconds).\n",
        table(["case", *steps], warm_up),
    ]
    return "\n".join(lines)
