"""`gtr bench`: time every stage from views to GLB (or the network alone, or training steps) and peak memory."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..contract import RECONSTRUCT_OPTIONS
from ..errors import GTRError
from ..files import atomic_write
from ..model import PRESETS


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


def _write_json(args: argparse.Namespace, runs: list[Any]) -> None:
    """The runs, with the date, torch version and command, as JSON at --json (if given)."""
    if args.json:
        date = time.strftime("%Y-%m-%d")
        info = {"date": date, "torch": torch.__version__, "command": args.command_line, "runs": runs}
        atomic_write(args.json, json.dumps(info, indent=2, default=str) + "\n")


def _pipeline(args: argparse.Namespace) -> int:
    """Views to GLB, stage by stage, for each device, preset and marching-cubes grid."""
    from ..evaluation.bench import PipelineCase, pipeline_markdown, run_pipeline_isolated
    from ..reconstruction import ReconstructOptions

    runs = []
    for device in args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]):
        grids = args.mesh_resolution or ([128, 256] if device.startswith("cuda") else [64, 128])
        for name in args.presets:
            for grid in grids:
                options = ReconstructOptions(
                    mesh_resolution=grid, refine_steps=args.refine_steps, texture_size=args.texture_size
                )
                case = PipelineCase(name, device, options, view_size=args.size, repeats=args.repeats)
                print(f"running {case}", file=sys.stderr)
                runs.append(run_pipeline_isolated(case))
    text = pipeline_markdown(runs)
    _write_json(args, runs)
    if args.markdown:
        atomic_write(args.markdown, text)
    print(text)
    return 0


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
