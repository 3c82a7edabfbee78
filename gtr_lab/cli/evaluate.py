"""`gtr eval FOLDER -o RESULTS`: the evaluation protocol (docs/method.md, section 7) on a folder of assets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gtr_backend.cli.common import (
    _floats,
    add_device_argument,
    add_reconstruct_options,
    options_from_arguments,
    progress_bar,
)
from gtr_backend.contract import ORBIT_DISTANCE, ORBIT_ELEVATION_DEG, ORBIT_FOV_DEG, VIEW_RADIUS
from gtr_backend.errors import GTRError

from ..evaluation.protocol import VARIANTS


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="the evaluation protocol on a folder of meshes or rendered view sets")
    p.add_argument("input", type=Path, help="folder of GLB/OBJ/PLY meshes, GSO folders or NAME/{inputs,eval} view sets")
    p.add_argument("-o", "--output", type=Path, default=Path("eval-results"), help="results folder (resumable)")
    p.add_argument("--weights", type=Path, help="weights file (default: the bundled starter weights)")
    add_device_argument(p)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help="which variants to run")
    p.add_argument("--assets", nargs="+", metavar="NAME", help="evaluate only these assets of the folder (by name)")
    p.add_argument(
        "--input-cameras", default="orbit", choices=["orbit", "zero123pp"], help="input camera preset (default orbit)"
    )
    p.add_argument("--azimuths", type=_floats, help="input view azimuths in degrees (default 0,90,180,270)")
    p.add_argument("--elevation", type=float, default=ORBIT_ELEVATION_DEG, help="input view elevation, degrees")
    p.add_argument("--fov", type=float, default=ORBIT_FOV_DEG, help="field of view of all cameras, degrees")
    p.add_argument(
        "--distance",
        type=float,
        default=ORBIT_DISTANCE,
        help=f"camera distance (assets lie inside radius {VIEW_RADIUS})",
    )
    p.add_argument("--size", type=int, default=512, help="rendered view size in pixels")
    p.add_argument("--eval-views", type=int, default=20, help="evaluation views on the orbit")
    p.add_argument("--surface-points", type=int, default=16000, help="points sampled per surface for Chamfer/ICP")
    add_reconstruct_options(p)
    p.add_argument("--lpips", type=Path, nargs="+", help="LPIPS weights: AlexNet .pth and lpips' alex.pth")
    p.add_argument("--no-sheets", action="store_true", help="skip the contact-sheet PNGs")
    p.add_argument("--label", default="", help="a name for this configuration in comparison tables")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from gtr_backend.devices import resolve_device
    from gtr_backend.render.raster import get_rasterizer
    from gtr_backend.weights import find_default_weights, load_model

    from ..evaluation.runner import EvalSettings, content_digest, find_assets, metrics_table, run_evaluation
    from ..lpips import load_lpips

    device = resolve_device(args.device)
    weights = args.weights or find_default_weights()
    if weights is None:
        raise GTRError("no weights given and none bundled: pass --weights PATH")
    protocol, options = _protocol(args), options_from_arguments(args)
    rasterizer = get_rasterizer(device)
    assets = _chosen(find_assets(args.input, rasterizer), args.assets)
    model = load_model(Path(weights), device).eval()
    lpips = load_lpips(args.lpips, device) if args.lpips else None
    settings = EvalSettings(
        protocol,
        options,
        weights=Path(weights).name,
        lpips=lpips is not None,
        weights_digest=content_digest(Path(weights)),
        sheets=not args.no_sheets,
        label=args.label,
        command=args.command_line,
        device_settings=device_settings(device, options, rasterizer.name),
    )
    args.output.mkdir(parents=True, exist_ok=True)
    with progress_bar(args.quiet, total=len(assets), unit="asset") as bar:

        def progress(name: str, done: int, total: int) -> None:
            bar.set_description_str(name)
            bar.update(done - bar.n)

        report = run_evaluation(assets, model, settings, args.output, device, lpips, progress)
    print(metrics_table(report["mean"], report["weights"]))
    print(f"wrote {args.output / 'results.md'}, {args.output / 'results.json'}", file=sys.stderr)
    return 0


def _chosen(assets: list[Any], names: list[str] | None) -> list[Any]:
    """The assets named by --assets (all when none are named); an unknown name is an error that lists them."""
    if not names:
        return assets
    known = {asset.name: asset for asset in assets}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise GTRError(f"no asset named {', '.join(unknown)} in the folder; it has {', '.join(known)}")
    return [known[name] for name in dict.fromkeys(names)]


def device_settings(device: Any, options: Any, rasterizer: str) -> dict[str, Any]:
    """What the device makes of the settings left automatic: the marching-cubes grid, the network's precision,
    the rasterizer and the marching cubes. Give --mesh-resolution to run the same grid on CUDA and the CPU."""
    from gtr_backend.mesh.extract import diso_available

    cuda = device.type == "cuda"
    precision = options.precision if options.precision != "auto" else ("bf16" if cuda else "fp32")
    marching_cubes = "diso" if cuda and options.marching_cubes != "torch" and diso_available() else "torch"
    return {
        "device": str(device),
        "mesh_resolution": options.resolution(device),
        "precision": precision,
        "rasterizer": rasterizer,
        "marching_cubes": marching_cubes,
    }


def _protocol(args: argparse.Namespace) -> Any:
    """The evaluation settings the arguments ask for (unknown variants are an error)."""
    from ..evaluation.protocol import EvalProtocol

    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise GTRError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return EvalProtocol(
        input_azimuths_deg=args.azimuths or EvalProtocol.input_azimuths_deg,
        input_elevation_deg=args.elevation,
        eval_views=args.eval_views,
        fov_deg=args.fov,
        distance=args.distance,
        size=args.size,
        surface_points=args.surface_points,
        input_cameras=args.input_cameras,
        variants=tuple(args.variants),
    )
