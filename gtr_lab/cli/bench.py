"""`gtr bench`: time every stage from views to GLB (or the network alone, or training steps) and peak memory."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gtr_backend.contract import RECONSTRUCT_OPTIONS
from gtr_backend.errors import GTRError
from gtr_backend.files import atomic_write
from gtr_backend.model import PRESETS


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="time every stage from views to GLB (or the network alone) and peak memory")
    p.add_argument("--presets", nargs="+", default=["gtr-small"], choices=sorted(PRESETS))
    p.add_argument("--device", nargs="+", help="devices to run on (default: cpu, and cuda when present)")
    p.add_argument(
        "--precision", nargs="+", choices=["fp32", "bf16", "fp16"], help="default: bf16 and fp32 on CUDA, fp32 on CPU"
    )
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--size", type=int, default=512, help="input view size in pixels")
    p.add_argument("--repeats", type=int, default=3, help="timed warm runs (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs between the cold run and the timed ones")
    p.add_argument("--render", action="store_true", help="also time a size x size NeRF render (256 samples)")
    p.add_argument("--refine-steps", type=int, default=RECONSTRUCT_OPTIONS["refine_steps"].default)
    p.add_argument("--texture-size", type=int, default=RECONSTRUCT_OPTIONS["texture_size"].default)
    p.add_argument("--training", action="store_true", help="time stage-1 training steps: objects/s, peak memory")
    p.add_argument("--batch", type=int, default=8, help="with --training: objects per step")
    p.add_argument("--patch", type=int, default=0, help="with --training: supervise patches of this size")
    p.add_argument("--model-only", action="store_true", help="time only views -> triplane, at several precisions")
    p.add_argument("--mesh-resolution", type=int, nargs="+", help="grids (default 128 256 on CUDA, 64 128 on CPU)")
    p.add_argument(
        "--no-requests", action="store_true", help="skip the backend server's requests (cold and warm, views to GLB)"
    )
    p.add_argument("--requests-only", action="store_true", help="time only the backend server's requests")
    p.add_argument("--weights", help="with the requests: the weights file (default: the bundled starter weights)")
    # The requests run at the options' defaults (the device's own grid), or the first --mesh-resolution given.
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--markdown", type=Path, help="write the results table as Markdown here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.bench import BenchCase, run_isolated, write_results

    if args.training:
        return _training(args)
    if not args.model_only:
        return _pipeline(args)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise GTRError("--device cuda was asked for, but PyTorch sees no CUDA GPU")
        for name in args.presets:
            for precision in args.precision or (["bf16", "fp32"] if device.startswith("cuda") else ["fp32"]):
                case = BenchCase(name, device, precision, args.views, args.size, args.repeats, args.warmup, args.render)
                print(f"running {case}", file=sys.stderr)
                results.append(run_isolated(case))
    print(write_results(results, args.json, args.markdown, args.command_line))
    return 0


def _write_json(args: argparse.Namespace, runs: list[Any], **more: list[Any]) -> None:
    """The runs (and `more` lists, e.g. the requests), with the date, torch and Python versions and the command,
    as JSON at --json (if given). Each run names its hardware (GPU or CPU)."""
    if args.json:
        import platform

        date = time.strftime("%Y-%m-%d")
        info: dict[str, Any] = {"date": date, "torch": torch.__version__, "python": platform.python_version()}
        info |= {"command": args.command_line, "runs": runs, **more}
        atomic_write(args.json, json.dumps(info, indent=2, default=str) + "\n")


def _pipeline(args: argparse.Namespace) -> int:
    """Views to GLB, stage by stage, for each device, preset and marching-cubes grid; then (unless
    --no-requests) requests to the backend server, cold and warm, with and without the optional CUDA packages."""
    from gtr_backend.devices import resolve_device
    from gtr_backend.reconstruction import ReconstructOptions

    from ..evaluation.bench import PipelineCase, pipeline_markdown, requests_markdown, run_pipeline_isolated

    if args.no_requests and args.requests_only:
        raise GTRError("--no-requests and --requests-only exclude each other; give one")
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for device in devices:
        resolve_device(device)  # one line, before any work, for a device this machine lacks
    runs: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []
    for device in devices:
        grids = args.mesh_resolution or ([128, 256] if device.startswith("cuda") else [64, 128])
        for name in [] if args.requests_only else args.presets:
            for grid in grids:
                options = ReconstructOptions(
                    mesh_resolution=grid, refine_steps=args.refine_steps, texture_size=args.texture_size
                )
                case = PipelineCase(name, device, options, view_size=args.size, repeats=args.repeats)
                print(f"running {case}", file=sys.stderr)
                runs.append(run_pipeline_isolated(case))
        if not args.no_requests:
            requests += _requests(args, device)
    text = pipeline_markdown(runs) + ("\n" if runs and requests else "") + requests_markdown(requests)
    _write_json(args, runs, requests=requests)
    if args.markdown:
        atomic_write(args.markdown, text)
    print(text)
    return 0


def _requests(args: argparse.Namespace, device: str) -> list[dict[str, Any]]:
    """The backend server's requests on `device`: on CUDA with the optional CUDA packages (when installed) and
    without them; elsewhere once (they are CUDA-only)."""
    from gtr_backend.reconstruction import ReconstructOptions

    from ..evaluation.bench import RequestCase, installed_optional_kernels, run_requests

    variants = [True, False] if device.startswith("cuda") and installed_optional_kernels() else [False]
    changed = {"refine_steps": args.refine_steps, "texture_size": args.texture_size}
    grid = args.mesh_resolution[0] if args.mesh_resolution else None
    if grid is not None and grid != ReconstructOptions().resolution(torch.device(device)):
        changed["mesh_resolution"] = grid  # not the device's own default
    options = tuple((k, v) for k, v in changed.items() if v != RECONSTRUCT_OPTIONS[k].default)
    results = []
    for optional in variants:
        case = RequestCase(device, optional, args.weights, args.size, args.repeats, options)
        print(f"running {case}", file=sys.stderr)
        results.append(run_requests(case))
    return results


def _training(args: argparse.Namespace) -> int:
    """Stage-1 training steps: objects per second and peak memory."""
    from ..evaluation.bench import TrainingCase, run_training_isolated, throughput_options, training_markdown

    runs = []
    for device in args.device or (["cuda"] if torch.cuda.is_available() else ["cpu"]):
        for name in args.presets:
            options = throughput_options(steps=args.repeats + 2, batch=args.batch, patch=args.patch)
            case = TrainingCase(name, device, options)
            print(f"running {case}", file=sys.stderr)
            runs.append(run_training_isolated(case))
    _write_json(args, runs)
    print(training_markdown(runs))
    return 0
