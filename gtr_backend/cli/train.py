"""`gtr train -o OUT.safetensors`: train stage 1 (NeRF) or stage 2 (mesh) and write the weights."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import GTRError
from ..model import PRESETS
from .common import DTYPES


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train stage 1 (NeRF) or 2 (mesh) and write .safetensors + .json")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .safetensors file to write")
    p.add_argument("--preset", default="gtr-small", choices=sorted(PRESETS))
    p.add_argument("--device", default="auto")
    p.add_argument("--objects", type=int, default=1024, help="procedural objects to render for training")
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--max-minutes", type=float, help="stop after this many minutes of training")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rays", type=int, default=4096, help="supervision rays per object and step")
    p.add_argument("--samples", type=int, default=96, help="samples per ray")
    p.add_argument("--lr", type=float, help="peak learning rate (default 4e-4 for stage 1, 5e-5 for stage 2)")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--dtype", default="bfloat16", choices=sorted(DTYPES), help="storage precision of the weights")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--init", type=Path, help="continue from these weights (.safetensors) instead of a fresh model")
    p.add_argument("--data", type=Path, help="train on a dataset folder (gtr dataset) instead of procedural objects")
    p.add_argument("--stream", action="store_true", help="render procedural objects on the fly for every batch")
    p.add_argument("--run-dir", type=Path, help="checkpoints, log.jsonl, TensorBoard logs and samples go here")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --run-dir")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (with --run-dir)")
    p.add_argument("--validate-every", type=int, default=500, help="steps between validations (0: never)")
    p.add_argument("--progress", action="store_true", help="show a progress bar with loss and throughput")
    p.add_argument("--stage", type=int, default=1, choices=[1, 2], help="1: NeRF; 2: mesh (needs --init)")
    p.add_argument("--grid", type=int, default=128, help="stage 2: marching-cubes grid per side (paper: 256)")
    p.add_argument("--patch", type=int, default=0, help="supervise PxP patches (+ perceptual loss) instead of rays")
    p.add_argument("--lpips", type=Path, nargs="+", help="LPIPS weights for the perceptual loss (else 1 - SSIM)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.lpips import load_lpips
    from ..model import preset
    from ..reconstruction import resolve_device
    from ..training import train_stage1
    from ..training.stage2 import train_stage2
    from ..weights import load_project_weights, save_weights

    device = resolve_device(args.device)
    if args.stage == 2 and not args.init:
        raise GTRError("stage 2 starts from stage-1 weights: pass --init STAGE1.safetensors")
    initial = load_project_weights(args.init, device) if args.init else None
    config = initial.config if initial is not None else preset(args.preset)
    pool = _pool(args, config.image_size, device)
    last: dict[str, float] = {}
    common = {
        "log": _logger(args, last),
        "run_dir": args.run_dir,
        "resume": args.resume,
        "progress": args.progress,
        "lpips": load_lpips(args.lpips, device) if args.lpips else None,
    }
    if args.stage == 1:
        model = train_stage1(config, pool, _stage1_options(args), device, model=initial, **common)
    else:
        assert initial is not None
        model = train_stage2(initial, pool, _stage2_options(args), device, **common)
    what = "stage 1 (NeRF)" if args.stage == 1 else "stage 2 (mesh)"
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    note = (
        f"{what} on {len(pool)} assets, {int(last.get('step', 0))} steps of batch "
        f"{args.batch}, {last.get('seconds', 0) / 60:.1f} min on {hardware}"
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


def _logger(args: argparse.Namespace, last: dict[str, float]) -> Any:
    """The training loop's log callback: keeps the last entry in `last`, prints every --log-every steps."""

    def log(entry: dict[str, float]) -> None:
        last.update(entry)
        if entry["step"] % args.log_every == 0 and not args.progress:
            print(
                f"step {entry['step']:6.0f}  loss {entry['loss']:.4f}  psnr {entry['psnr']:5.2f}  "
                f"opacity {entry['opacity_loss']:.4f}  lr {entry['lr']:.2e}  {entry['seconds']:7.1f} s",
                file=sys.stderr,
                flush=True,
            )

    return log


def _shared_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options both training stages take, from the arguments."""
    names = ("steps", "batch", "samples", "warmup", "max_minutes", "checkpoint_every", "validate_every", "log_every")
    shared = {name: getattr(args, name) for name in names}
    return shared | ({"lr": args.lr} if args.lr is not None else {})  # else each stage's own default


def _stage1_options(args: argparse.Namespace) -> Any:
    from ..training import Stage1Options

    return Stage1Options(rays=args.rays, patch=args.patch, **_shared_options(args))


def _stage2_options(args: argparse.Namespace) -> Any:
    from ..training.stage2 import Stage2Options

    return Stage2Options(grid=args.grid, **_shared_options(args))
