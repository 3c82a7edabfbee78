"""`gtr reconstruct INPUT -o OUT.glb`: posed views in, a textured mesh file (GLB, OBJ or PLY) out."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..contract import EXIT_FAILS_INPUTS
from ..errors import GTRError
from ..files import check_output
from .common import (
    STAGE_BAR,
    add_device_argument,
    add_reconstruct_options,
    add_view_arguments,
    options_from_arguments,
    progress_bar,
    views_from_arguments,
)


def register(sub: Any) -> None:
    p = sub.add_parser("reconstruct", help="posed views in, textured mesh file (GLB, OBJ or PLY) out")
    add_view_arguments(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="the mesh file to write (.glb, .obj, .ply)")
    p.add_argument("--weights", type=Path, help="weights file (default: the bundled starter weights)")
    add_device_argument(p)
    add_reconstruct_options(p)
    p.add_argument("--refine-params", default="both", choices=["both", "color_mlp", "triplane"])
    p.add_argument(
        "--texture-format",
        choices=("png", "jpeg"),
        default="png",
        help="how a GLB stores its texture: png (lossless) or jpeg (quality 90, several times smaller)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary (timings, files) instead of text")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..export import FORMATS
    from ..reconstruction import reconstruct
    from ..weights import describe_weights, find_default_weights

    output = check_output(args.output, FORMATS, "mesh")  # before minutes of work, not after
    weights = args.weights or find_default_weights()
    if weights is None:
        raise GTRError(
            "no weights given and none bundled: pass --weights PATH (a .safetensors file with its .json, "
            "or the released GTR ckpt.pth)"
        )
    device = resolve_device(args.device)
    options = options_from_arguments(args)
    views = views_from_arguments(args)
    if not args.json:
        print(f"weights: {describe_weights(Path(weights))}", file=sys.stderr)
    start = time.perf_counter()
    with _Progress(args.json or args.quiet) as progress:
        result = reconstruct(views, Path(weights), device, options, progress=progress)
    files = result.save(output, args.texture_format)
    total = time.perf_counter() - start
    for note in result.notes:
        print(f"gtr: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(_summary(result, files, weights, views.num_views, total), indent=2))
    else:
        _report(result, files, total)
    if result.problem:  # written, but not called done: a distinct exit status for scripts and batches
        print(f"gtr: warning: {result.problem}", file=sys.stderr)
        return EXIT_FAILS_INPUTS
    return 0


class _Progress:
    """A context giving the reconstruction's progress callback: a bar on a terminal, one line per stage in a log
    (stderr not a terminal), nothing when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.stages = quiet, set[str]()
        self.bar = progress_bar(quiet, total=100, desc="starting", unit="%", bar_format=STAGE_BAR)

    def __enter__(self) -> Any:
        return self.report

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def report(self, stage: str, fraction: float) -> None:
        if self.bar.disable and not self.quiet and stage not in self.stages:
            print(f"{stage}...", file=sys.stderr, flush=True)
        self.stages.add(stage)
        self.bar.set_description_str(stage)
        self.bar.update(round(fraction * 100) - self.bar.n)


def _summary(result: Any, files: list[Path], weights: Path, views: int, total: float) -> dict[str, Any]:
    """What `--json` prints: files, device, weights, sizes, timings, refinement, silhouette and fidelity scores."""
    refinement = result.refinement
    return {
        "output": [str(f) for f in files],
        "device": result.device,
        "weights": str(weights),
        "views": views,
        "faces": result.mesh.num_faces,
        "lod_faces": [lod.num_faces for lod in result.lods],
        "vertices": result.mesh.num_vertices,
        "material": result.mesh.material_texture is not None,
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "total_s": round(total, 4),
        "refine_psnr_before": refinement.psnr_before if refinement else None,
        "refine_psnr_after": refinement.psnr_after if refinement else None,
        "fidelity": result.fidelity.as_dict() if result.fidelity else None,
        "notes": result.notes,
        "problem": result.problem,
    }


def _report(result: Any, files: list[Path], total: float) -> None:
    """The plain-text summary: stage timings and scores on stderr, the files written on stdout."""
    for stage, seconds in result.timings.items():
        print(f"  {stage:<16} {seconds * 1000:9.1f} ms", file=sys.stderr)
    print(f"  {'total':<16} {total * 1000:9.1f} ms", file=sys.stderr)
    if result.refinement:
        before, after = result.refinement.psnr_before, result.refinement.psnr_after
        print(f"refinement: input-view PSNR {before:.2f} -> {after:.2f} dB", file=sys.stderr)
    if result.fidelity:
        ious = ", ".join(f"{v:.3f}" for v in result.fidelity.mask_iou_per_view)
        print(f"silhouettes: mesh vs input masks, IoU per view {ious}", file=sys.stderr)
    if result.fidelity and result.fidelity.psnr is not None:
        print(f"fidelity: the result from the input cameras, PSNR {result.fidelity.psnr:.2f} dB", file=sys.stderr)
    if result.fidelity and result.fidelity.held_out_views:
        score = result.fidelity
        print(
            f"fidelity on {score.held_out_views} held-out view(s), kept out of the fit: PSNR "
            f"{score.held_out_psnr if score.held_out_psnr is not None else 'n/a'} dB, mask IoU "
            f"{score.held_out_mask_iou:.3f}",
            file=sys.stderr,
        )
    levels = "".join(f", LOD{k}: {lod.num_faces}" for k, lod in enumerate(result.lods, start=1))
    pbr = "base colour, roughness and metallic" if result.mesh.material_texture is not None else "base colour"
    print(f"wrote {', '.join(map(str, files))} ({result.mesh.num_faces} faces{levels}; {pbr})")
