"""`gtr train -o OUT.safetensors`: train stage 1 (NeRF) or stage 2 (mesh) and write the weights."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gtr_backend.cli.common import DTYPES, add_device_argument
from gtr_backend.errors import GTRError
from gtr_backend.files import check_output
from gtr_backend.model import PRESETS


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train stage 1 (NeRF) or 2 (mesh) and write .safetensors + .json")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .safetensors file to write")
    p.add_argument("--preset", default="gtr-small", choices=sorted(PRESETS))
    add_device_argument(p)
    p.add_argument("--objects", type=int, default=1024, help="procedural objects to render for training")
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES), help="storage precision of the weights")
    p.add_argument("--init", type=Path, help="continue from these weights (.safetensors) instead of a fresh model")
    p.add_argument("--data", type=Path, help="train on a dataset folder (gtr dataset) instead of procedural objects")
    p.add_argument("--stream", action="store_true", help="render procedural objects on the fly for every batch")
    p.add_argument("--run-dir", type=Path, help="checkpoints, log.jsonl, TensorBoard logs and samples go here")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --run-dir")
    p.add_argument("--progress", action="store_true", help="show a progress bar with loss and throughput")
    p.add_argument("--stage", type=int, default=1, choices=[1, 2], help="1: NeRF; 2: mesh (needs --init)")
    p.add_argument("--lpips", type=Path, nargs="+", help="LPIPS weights for the perceptual loss (else 1 - SSIM)")
    add_stage_arguments(p)
    p.set_defaults(run=run)


# The stages' options the command line sets, with their help. Each default is the stage's own, read from
# `Stage1Options` / `Stage2Options` (one definition); an option only one stage has is refused for the other.
STAGE_ARGUMENTS = {
    "steps": "training steps",
    "max_minutes": "stop after this many minutes of training",
    "batch": "objects per step",
    "rays": "supervision rays per object and step",
    "samples": "samples per ray",
    "lr": "peak learning rate",
    "warmup": "steps of linear learning-rate warm-up",
    "log_every": "steps between log entries",
    "checkpoint_every": "steps between checkpoints (with --run-dir)",
    "validate_every": "steps between validations (0: never)",
    "patch": "supervise PxP patches (+ perceptual loss) instead of random rays",
    "grid": "marching-cubes grid per side (the paper: 256)",
}


def _stage_classes() -> dict[int, Any]:
    from ..training import Stage1Options, Stage2Options

    return {1: Stage1Options, 2: Stage2Options}


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """--steps, --batch, ... from `STAGE_ARGUMENTS`; unset (None) unless given, so each stage's default applies."""
    stages = _stage_classes()
    for name, text in STAGE_ARGUMENTS.items():
        defaults = {stage: getattr(cls(), name) for stage, cls in stages.items() if hasattr(cls(), name)}
        kind = float if any(isinstance(d, float) or d is None for d in defaults.values()) else int
        shown = {f"{d:g}" if d is not None else "none" for d in defaults.values()}
        if len(defaults) == 1:
            text = f"stage {next(iter(defaults))} only: {text} (default: {shown.pop()})"
        elif len(shown) == 1:
            text = f"{text} (default: {shown.pop()})"
        else:
            text += " (default: " + ", ".join(f"{d:g} for stage {stage}" for stage, d in defaults.items()) + ")"
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help=text)


def stage_options(args: argparse.Namespace) -> Any:
    """The options of the stage `args.stage` asks for: its defaults, changed by the arguments given."""
    cls = _stage_classes()[args.stage]
    given = {name: getattr(args, name) for name in STAGE_ARGUMENTS if getattr(args, name) is not None}
    foreign = [name for name in given if not hasattr(cls(), name)]
    if foreign:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in foreign)
        raise GTRError(f"{flags}: not an option of stage {args.stage}; leave it out or use the other --stage")
    return cls(**given)


def run(args: argparse.Namespace) -> int:
    from gtr_backend.devices import device_label, resolve_device
    from gtr_backend.model import GTR, preset
    from gtr_backend.weights import load_project_weights, save_weights

    from ..lpips import load_lpips
    from ..training import TrainingRun, train

    options = stage_options(args)  # before any work: a wrong flag or output is named at once
    check_output(args.output, (".safetensors",), "weights")
    if args.objects < 1:
        raise GTRError(f"--objects must be at least 1, got {args.objects}")
    if args.resume and not args.run_dir:
        raise GTRError("--resume continues from the checkpoints in --run-dir: give --run-dir too")
    device = resolve_device(args.device)
    if args.stage == 2 and not args.init:
        raise GTRError("stage 2 starts from stage-1 weights: pass --init STAGE1.safetensors")
    initial = load_project_weights(args.init, device) if args.init else None
    config = initial.config if initial is not None else preset(args.preset)
    if getattr(options, "patch", 0) > config.image_size:
        raise GTRError(f"--patch {options.patch} is larger than {config.name}'s views ({config.image_size} px)")
    pool = _pool(args, config.image_size, device)
    last: dict[str, float] = {}
    where = TrainingRun(None, args.run_dir, args.resume, args.progress, _logger(args.progress, options.log_every, last))
    lpips = load_lpips(args.lpips, device) if args.lpips else None
    model = train(initial if initial is not None else GTR(config), pool, options, device, where, lpips)
    what = "stage 1 (NeRF)" if args.stage == 1 else "stage 2 (mesh)"
    hardware = device_label(device)
    note = (
        f"{what} on {len(pool)} assets, {int(last.get('step', 0))} steps of batch "
        f"{options.batch}, {last.get('seconds', 0) / 60:.1f} min on {hardware}"
    )
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one process writes the weights
        save_weights(model, args.output, DTYPES[args.dtype], info={"note": note, "final_loss": last.get("loss")})
        print(f"wrote {args.output}: {note}")
    return 0


def _pool(args: argparse.Namespace, size: int, device: torch.device) -> Any:
    """The training objects: a dataset folder (--data), objects rendered on the fly (--stream), or procedural
    objects rendered once."""
    from ..training import RenderedPool, StreamingPool, ViewSampling

    sampling = ViewSampling(size=size)
    start = time.perf_counter()
    if args.data:
        pool = RenderedPool.from_folder(args.data, device, size=size)
        print(f"read {len(pool)} assets from {args.data} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        return pool
    if args.stream:
        return StreamingPool(range(args.objects), sampling, device)
    pool = RenderedPool(range(args.objects), sampling, device, with_depth=args.stage == 2)
    print(f"rendered {len(pool)} procedural objects in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return pool


def _logger(progress: bool, every: int, last: dict[str, float]) -> Any:
    """The training loop's log callback: keeps the last entry in `last`, prints every `every` steps (unless a
    progress bar shows them)."""

    def log(entry: dict[str, float]) -> None:
        last.update(entry)
        if entry["step"] % every == 0 and not progress:
            print(
                f"step {entry['step']:6.0f}  loss {entry['loss']:.4f}  psnr {entry['psnr']:5.2f}  "
                f"opacity {entry['opacity_loss']:.4f}  lr {entry['lr']:.2e}  {entry['seconds']:7.1f} s",
                file=sys.stderr,
                flush=True,
            )

    return log
