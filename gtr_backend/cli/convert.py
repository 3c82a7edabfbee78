"""`gtr convert-weights ckpt.pth OUT.safetensors`: the released checkpoint, converted once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..model import PRESETS
from .common import DTYPES


def register(sub: Any) -> None:
    p = sub.add_parser("convert-weights", help="convert the released GTR ckpt.pth to .safetensors + .json")
    p.add_argument("checkpoint", type=Path, help="the released checkpoint (ckpt.pth)")
    p.add_argument("output", type=Path, help="the .safetensors file to write (its .json is written beside it)")
    p.add_argument("--preset", default="gtr-paper", choices=sorted(PRESETS))
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="storage precision")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..model import preset
    from ..weights import convert_released_checkpoint

    json_path = convert_released_checkpoint(args.checkpoint, args.output, preset(args.preset), DTYPES[args.dtype])
    print(f"wrote {args.output} and {json_path}")
    return 0
