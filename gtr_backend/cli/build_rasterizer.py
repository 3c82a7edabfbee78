"""`gtr build-rasterizer`: build nvdiffrast's CUDA rasterizer now (it otherwise builds on its first use).

Prints its progress as `rasterizer: ...` lines on stdout (the add-on's Set Up Backend shows them), removes a
lock an interrupted build left behind, waits for a build another process is running, and ends with a tiny
rasterization that proves the plugin works. A build that cannot run (no GPU, nvdiffrast not installed, no nvcc
or ninja) or fails is one line and exit status 2; the PyTorch rasterizer is then what reconstructions use.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from ..errors import GTRError

PREFIX = "rasterizer: "


def register(sub: Any) -> None:
    p = sub.add_parser(
        "build-rasterizer", help="build nvdiffrast's CUDA rasterizer now (otherwise it builds on first use)"
    )
    p.add_argument("--no-wait", action="store_true", help="fail at once if another process is building it")
    p.set_defaults(run=run)


def say(message: str) -> None:
    print(PREFIX + message, flush=True)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # a terminated build unwinds: PyTorch stops ninja and removes its lock


def draws() -> bool:
    """Whether nvdiffrast draws a triangle over the middle of a 16 x 16 image on the GPU."""
    import torch

    from ..render.raster import get_rasterizer

    rasterizer = get_rasterizer("cuda", "nvdiffrast")
    clip = torch.tensor([[[-0.8, -0.8, 0.0, 1.0], [0.8, -0.8, 0.0, 1.0], [0.0, 0.8, 0.0, 1.0]]], device="cuda")
    faces = torch.tensor([[0, 1, 2]], device="cuda")
    return int(rasterizer.rasterize(clip, faces, 16, 16).triangle_id[0, 8, 8]) == 0


def run(args: argparse.Namespace) -> int:
    import torch

    from ..render.nvdiffrast_build import ensure_plugin, extensions_root
    from ..render.raster import nvdiffrast_available

    if not torch.cuda.is_available():
        raise GTRError(
            "no CUDA GPU is visible to this PyTorch, so there is nothing to build: reconstructions use the "
            "PyTorch rasterizer"
        )
    if not nvdiffrast_available():
        raise GTRError(
            "nvdiffrast is not installed in this Python: install it with "
            f"`{sys.executable} -m pip install diffrp-nvdiffrast` (non-commercial licence) and run this again"
        )
    if sys.platform != "win32":
        signal.signal(signal.SIGTERM, _interrupted)
    built = ensure_plugin(wait=not args.no_wait, say=say)
    if not draws():
        raise GTRError("nvdiffrast's CUDA rasterizer loaded but drew nothing: reinstall diffrp-nvdiffrast")
    state = "built now" if built else "already built"
    say(f"ready ({state}; {torch.cuda.get_device_name()}; in {extensions_root()})")
    return 0
