"""The `gtr` command: reconstruct, views, convert-weights, train, dataset, eval, report and bench.

Errors a user can fix are printed as one plain message (exit status 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .contract import ORBIT_DISTANCE, ORBIT_ELEVATION_DEG, ORBIT_FOV_DEG, RECONSTRUCT_OPTIONS, VIEW_RADIUS
from .errors import GTRError
from .evaluation.protocol import VARIANTS
from .files import atomic_write, check_output
from .model import PRESETS
from .views import Orbit, ViewSet, load_views

if TYPE_CHECKING:
    from .reconstruction import ReconstructOptions

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _background(text: str) -> str | tuple[float, float, float]:
    if "," in text:
        values = _floats(text)
        if len(values) != 3:
            raise argparse.ArgumentTypeError("a background colour is three numbers in [0, 1], e.g. 1,1,1")
        return (values[0], values[1], values[2])
    return text


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that say how to read a view set (shared by every command that takes views)."""
    parser.add_argument(
        "input",
        type=Path,
        help="a view folder (cameras.json or cam_NNN.txt), a cameras.json, "
        "an image folder with --orbit, or a grid image with --zero123pp",
    )
    parser.add_argument("--zero123pp", action="store_true", help="INPUT is a Zero123++ 3x2 grid image")
    parser.add_argument("--orbit", action="store_true", help="images without cameras: put them on an orbit")
    parser.add_argument(
        "--azimuths", type=_floats, help="orbit azimuths in degrees, comma-separated (default: evenly spaced from 0)"
    )
    parser.add_argument("--elevation", type=float, default=Orbit.elevation_deg, help="orbit elevation, degrees")
    parser.add_argument("--fov", type=float, default=Orbit.fov_deg, help="orbit field of view, degrees")
    parser.add_argument("--distance", type=float, default=Orbit.distance, help="orbit camera distance")
    parser.add_argument(
        "--background",
        type=_background,
        help="for images without alpha: the background colour (white, gray, black or r,g,b)",
    )


def _on_off(text: str) -> bool:
    if text.lower() in ("on", "yes", "true", "1"):
        return True
    if text.lower() in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def add_reconstruct_options(parser: argparse.ArgumentParser) -> None:
    """The reconstruction's options (reconstruct and eval), each with the default, range and help of its one
    definition in `contract.RECONSTRUCT_OPTIONS`."""
    option = RECONSTRUCT_OPTIONS

    def default(name: str) -> str:
        value = option[name].default
        return f"{option[name].help} (default {'on' if value is True else value})"

    parser.add_argument(
        "--mesh-resolution", type=int, default=option["mesh_resolution"].default, help=option["mesh_resolution"].help
    )
    parser.add_argument(
        "--no-geometry-refine",
        dest="geometry_refine",
        action="store_false",
        default=option["geometry_refine"].default,
        help="keep the network's shape as it is (no carving by the masks, no fill, no surface fit)",
    )
    parser.add_argument(
        "--geometry-steps", type=int, default=option["geometry_steps"].default, help=default("geometry_steps")
    )
    parser.add_argument(
        "--texture-from-views",
        type=_on_off,
        default=option["texture_from_views"].default,
        metavar="on|off",
        help=default("texture_from_views"),
    )
    parser.add_argument(
        "--refine-steps", type=int, default=option["refine_steps"].default, help=default("refine_steps")
    )
    parser.add_argument(
        "--texture-size", type=int, default=option["texture_size"].default, help=default("texture_size")
    )
    parser.add_argument("--faces", type=int, default=option["target_faces"].default, help=default("target_faces"))
    parser.add_argument("--uv", choices=option["uv"].choices, default=option["uv"].default, help=default("uv"))
    parser.add_argument(
        "--normal-map",
        action="store_true",
        default=option["normal_map"].default,
        help=option["normal_map"].help + " (the GLB's normalTexture)",
    )


def options_from_arguments(args: argparse.Namespace) -> ReconstructOptions:
    """The `ReconstructOptions` the parsed arguments of `add_reconstruct_options` (and reconstruct's own
    --refine-params and --vertex-colors, where present) ask for."""
    from .reconstruction import ReconstructOptions

    return ReconstructOptions(
        mesh_resolution=args.mesh_resolution,
        geometry_refine=args.geometry_refine,
        geometry_steps=args.geometry_steps,
        texture_from_views=args.texture_from_views,
        refine_steps=args.refine_steps,
        refine_params=getattr(args, "refine_params", "both"),
        texture_size=args.texture_size,
        target_faces=args.faces,
        uv=args.uv,
        normal_map=args.normal_map,
        vertex_colors=getattr(args, "vertex_colors", False),
    )


STAGE_BAR = "{desc:<16} {bar} {percentage:3.0f}% {elapsed}"


def progress_bar(quiet: bool, **options: Any) -> Any:
    """A tqdm bar on stderr when it is a terminal; when it is not (a log file, a pipe) or `quiet`, a disabled
    bar, so a log never fills with carriage-return updates."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=quiet or not sys.stderr.isatty(), **options)


def views_from_arguments(args: argparse.Namespace) -> ViewSet:
    """The view set the arguments name. Orbit options that will not be used (the input has its own cameras,
    or --orbit is missing) are said so on stderr rather than dropped without a word."""
    from .views.loaders import own_cameras

    defaults = {"azimuths": None, "elevation": Orbit.elevation_deg, "fov": Orbit.fov_deg, "distance": Orbit.distance}
    orbit_options = [f"--{name}" for name, default in defaults.items() if getattr(args, name) != default]
    cameras = None if args.zero123pp else own_cameras(args.input)
    if cameras and (args.orbit or orbit_options):
        ignored = " ".join((["--orbit"] if args.orbit else []) + orbit_options)
        print(f"gtr: note: {args.input} has its own cameras ({cameras}); {ignored} ignored", file=sys.stderr)
    elif orbit_options and not args.orbit and not args.zero123pp:
        print(f"gtr: note: {' '.join(orbit_options)} apply only with --orbit; ignored", file=sys.stderr)
    orbit = Orbit(args.azimuths, args.elevation, args.fov, args.distance) if args.orbit and not cameras else None
    return load_views(args.input, orbit=orbit, zero123pp=args.zero123pp, background=args.background)


def cmd_views(args: argparse.Namespace) -> int:
    from .model import GTRConfig

    views = views_from_arguments(args)
    print(f"{views.num_views} views, {views.width}x{views.height}")
    for i, name in enumerate(views.names):
        centre = views.c2w[i, :3, 3]
        fx = float(views.intrinsics[i, 0])
        coverage = float(views.mask[i].mean())
        print(
            f"  {i}: {name}  camera at ({centre[0]:+.3f}, {centre[1]:+.3f}, {centre[2]:+.3f}), "
            f"distance {float(centre.norm()):.3f}, fx {fx:.1f} px, object covers {coverage:.0%}"
        )
    if views.num_views < GTRConfig.min_views:
        raise GTRError(
            f"{args.input}: {views.num_views} view(s); `gtr reconstruct` needs at least {GTRConfig.min_views} "
            "views of the object from around it"
        )
    return 0


def cmd_convert_weights(args: argparse.Namespace) -> int:
    from .model import preset
    from .weights import convert_released_checkpoint

    json_path = convert_released_checkpoint(args.checkpoint, args.output, preset(args.preset), DTYPES[args.dtype])
    print(f"wrote {args.output} and {json_path}")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import json

    from .export import FORMATS
    from .reconstruction import reconstruct, resolve_device
    from .weights import describe_weights, find_default_weights

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
    quiet = args.json or args.quiet
    stages: list[str] = []
    with progress_bar(quiet, total=100, desc="starting", unit="%", bar_format=STAGE_BAR) as bar:

        def progress(stage: str, fraction: float) -> None:
            if bar.disable and not quiet and stage not in stages:  # a log, not a terminal: one line per stage
                print(f"{stage}...", file=sys.stderr, flush=True)
            stages.append(stage)
            bar.set_description_str(stage)
            bar.update(round(fraction * 100) - bar.n)

        result = reconstruct(views, Path(weights), device, options, progress=progress)
    files = result.save(output, args.texture_format)
    total = time.perf_counter() - start
    summary = {
        "output": [str(f) for f in files],
        "device": result.device,
        "weights": str(weights),
        "views": views.num_views,
        "faces": result.mesh.num_faces,
        "vertices": result.mesh.num_vertices,
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "total_s": round(total, 4),
        "refine_psnr_before": result.refinement.psnr_before if result.refinement else None,
        "refine_psnr_after": result.refinement.psnr_after if result.refinement else None,
        "silhouette_iou": result.silhouette_iou,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for stage, seconds in result.timings.items():
        print(f"  {stage:<16} {seconds * 1000:9.1f} ms", file=sys.stderr)
    print(f"  {'total':<16} {total * 1000:9.1f} ms", file=sys.stderr)
    if result.refinement:
        print(
            f"refinement: input-view PSNR {result.refinement.psnr_before:.2f} -> {result.refinement.psnr_after:.2f} dB",
            file=sys.stderr,
        )
    ious = ", ".join(f"{v:.3f}" for v in result.silhouette_iou)
    print(f"silhouettes: mesh vs input masks, IoU per view {ious}", file=sys.stderr)
    print(f"wrote {', '.join(map(str, files))} ({result.mesh.num_faces} faces)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import platform

    from .evaluation.lpips import load_lpips
    from .model import GTR, preset
    from .reconstruction import resolve_device
    from .training import RenderedPool, Stage1Options, StreamingPool, ViewSampling, train_stage1
    from .training.stage2 import Stage2Options, train_stage2
    from .weights import load_weights, save_weights

    device = resolve_device(args.device)
    if args.stage == 2 and not args.init:
        raise GTRError("stage 2 starts from stage-1 weights: pass --init STAGE1.safetensors")
    initial = load_weights(args.init, device) if args.init else None
    config = initial.config if initial is not None else preset(args.preset)
    sampling = ViewSampling(size=config.image_size)
    depth = args.stage == 2
    start = time.perf_counter()
    pool: RenderedPool | StreamingPool
    if args.data:
        pool = RenderedPool.from_folder(args.data, device, size=config.image_size)
        print(f"read {len(pool)} assets from {args.data} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    elif args.stream:
        pool = StreamingPool(range(args.objects), sampling, device)
    else:
        pool = RenderedPool(range(args.objects), sampling, device, with_depth=depth)
        print(f"rendered {len(pool)} procedural objects in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    last: dict[str, float] = {}

    def log(entry: dict[str, float]) -> None:
        last.update(entry)
        if entry["step"] % args.log_every == 0 and not args.progress:
            print(
                f"step {entry['step']:6.0f}  loss {entry['loss']:.4f}  psnr {entry['psnr']:5.2f}  "
                f"opacity {entry['opacity_loss']:.4f}  lr {entry['lr']:.2e}  {entry['seconds']:7.1f} s",
                file=sys.stderr,
                flush=True,
            )

    common = {
        "log": log,
        "run_dir": args.run_dir,
        "resume": args.resume,
        "progress": args.progress,
        "lpips": load_lpips(args.lpips, device) if args.lpips else None,
    }
    model: GTR
    if args.stage == 1:
        options = Stage1Options(
            steps=args.steps,
            batch=args.batch,
            rays=args.rays,
            samples=args.samples,
            lr=args.lr or 4e-4,
            warmup=args.warmup,
            max_minutes=args.max_minutes,
            checkpoint_every=args.checkpoint_every,
            patch=args.patch,
            validate_every=args.validate_every,
            log_every=args.log_every,
        )
        model = train_stage1(config, pool, options, device, model=initial, **common)
        what = "stage 1 (NeRF)"
    else:
        assert initial is not None
        stage2 = Stage2Options(
            steps=args.steps,
            batch=args.batch,
            grid=args.grid,
            lr=args.lr or 5e-5,
            warmup=args.warmup,
            samples=args.samples,
            max_minutes=args.max_minutes,
            checkpoint_every=args.checkpoint_every,
            validate_every=args.validate_every,
            log_every=args.log_every,
        )
        model = train_stage2(initial, pool, stage2, device, **common)
        what = "stage 2 (mesh)"
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    note = (
        f"{what} on {len(pool)} assets, {int(last.get('step', 0))} steps of batch "
        f"{args.batch}, {last.get('seconds', 0) / 60:.1f} min on {hardware}"
    )
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one process writes the weights
        save_weights(model, args.output, DTYPES[args.dtype], info={"note": note, "final_loss": last.get("loss")})
        print(f"wrote {args.output}: {note}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:

    from .evaluation.lpips import load_lpips
    from .evaluation.protocol import Protocol
    from .evaluation.runner import EvalSettings, content_digest, find_assets, run_evaluation
    from .reconstruction import resolve_device
    from .render.raster import get_rasterizer
    from .weights import find_default_weights, load_model

    device = resolve_device(args.device)
    weights = args.weights or find_default_weights()
    if weights is None:
        raise GTRError("no weights given and none bundled: pass --weights PATH")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise GTRError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    protocol = Protocol(
        input_azimuths_deg=args.azimuths or Protocol.input_azimuths_deg,
        input_elevation_deg=args.elevation,
        eval_views=args.eval_views,
        fov_deg=args.fov,
        distance=args.distance,
        size=args.size,
        surface_points=args.surface_points,
        input_cameras=args.input_cameras,
        variants=tuple(args.variants),
    )
    options = options_from_arguments(args)
    assets = find_assets(args.input, get_rasterizer(device))
    model = load_model(Path(weights), device).eval()
    lpips = load_lpips(args.lpips, device) if args.lpips else None
    settings = EvalSettings(protocol, options, Path(weights).name, lpips is not None, content_digest(Path(weights)))
    args.output.mkdir(parents=True, exist_ok=True)
    with progress_bar(args.quiet, total=len(assets), unit="asset") as bar:

        def progress(name: str, done: int, total: int) -> None:
            bar.set_description_str(name)
            bar.update(done - bar.n)

        report = run_evaluation(
            assets,
            model,
            settings,
            args.output,
            device,
            lpips,
            not args.no_sheets,
            progress,
            args.command_line,
            args.label,
        )
    from .evaluation.runner import metrics_table

    print(metrics_table(report["mean"], report["weights"]))
    print(f"wrote {args.output / 'results.md'}, {args.output / 'results.json'}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .evaluation.report import results_page

    atomic_write(check_output(args.output, (".md",), "report"), results_page(args.folder))
    print(f"wrote {args.output}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:

    from .evaluation.protocol import load_mesh_file, normalize_mesh
    from .evaluation.runner import MESH_SUFFIXES
    from .reconstruction import resolve_device
    from .training import ViewSampling, random_object, write_dataset

    assets: list = [random_object(seed) for seed in range(args.objects)]
    if args.meshes:
        files = sorted(p for p in args.meshes.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
        assets += [(p.stem, normalize_mesh(load_mesh_file(p))) for p in files]
    if not assets:
        raise GTRError("nothing to render: give --objects N (procedural objects) and/or --meshes FOLDER")
    sampling = ViewSampling(size=args.size, input_views=args.input_views, supervision_views=args.supervision_views)
    with progress_bar(args.quiet, total=len(assets), unit="asset") as bar:
        written = write_dataset(assets, args.output, sampling, resolve_device(args.device), lambda d, t: bar.update(1))
    print(f"wrote {len(written)} assets to {args.output}")
    return 0


def bench_pipeline(args: argparse.Namespace) -> int:
    import json

    from .evaluation.bench import PipelineCase, pipeline_markdown, run_pipeline_isolated

    runs = []
    for device in args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]):
        grids = args.mesh_resolution or ([128, 256] if device.startswith("cuda") else [64, 128])
        for name in args.presets:
            for grid in grids:
                case = PipelineCase(
                    name,
                    device,
                    mesh_resolution=grid,
                    refine_steps=args.refine_steps,
                    texture_size=args.texture_size,
                    view_size=args.size,
                    repeats=args.repeats,
                )
                print(f"running {case}", file=sys.stderr)
                runs.append(run_pipeline_isolated(case))
    text = pipeline_markdown(runs)
    if args.json:
        atomic_write(
            args.json,
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "torch": torch.__version__,
                    "command": args.command_line,
                    "runs": runs,
                },
                indent=2,
                default=str,
            )
            + "\n",
        )
    if args.markdown:
        atomic_write(args.markdown, text)
    print(text)
    return 0


def bench_training(args: argparse.Namespace) -> int:
    import json

    from .evaluation.bench import TrainingCase, run_training_isolated, training_markdown

    runs = []
    for device in args.device or (["cuda"] if torch.cuda.is_available() else ["cpu"]):
        for name in args.presets:
            case = TrainingCase(name, device, batch=args.batch, steps=args.repeats + 2, patch=args.patch)
            print(f"running {case}", file=sys.stderr)
            runs.append(run_training_isolated(case))
    text = training_markdown(runs)
    if args.json:
        info = {
            "date": time.strftime("%Y-%m-%d"),
            "torch": torch.__version__,
            "command": args.command_line,
            "runs": runs,
        }
        atomic_write(args.json, json.dumps(info, indent=2) + "\n")
    print(text)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .evaluation.bench import BenchCase, run_isolated, write_results

    if args.training:
        return bench_training(args)
    if not args.model_only:
        return bench_pipeline(args)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gtr", description="GTR: posed views of an object in, 3D out.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("views", help="load a view set, check it and summarise its cameras")
    add_view_arguments(p)
    p.set_defaults(run=cmd_views)

    p = sub.add_parser("reconstruct", help="posed views in, textured mesh file (GLB, OBJ or PLY) out")
    add_view_arguments(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="the mesh file to write (.glb, .obj, .ply)")
    p.add_argument("--weights", type=Path, help="weights file (default: the bundled starter weights)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_reconstruct_options(p)
    p.add_argument("--refine-params", default="both", choices=["both", "color_mlp", "triplane"])
    p.add_argument("--vertex-colors", action="store_true", help="colour per vertex instead of a UV texture")
    p.add_argument(
        "--texture-format",
        choices=("png", "jpeg"),
        default="png",
        help="how a GLB stores its texture: png (lossless) or jpeg (quality 90, several times smaller)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary (timings, files) instead of text")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_reconstruct)

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
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("dataset", help="render training assets (procedural objects and/or meshes) into a folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="the dataset folder to write")
    p.add_argument("--objects", type=int, default=0, help="procedural objects (seeds 0..N-1)")
    p.add_argument("--meshes", type=Path, help="a folder of textured meshes (GLB, OBJ, PLY) to add")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--input-views", type=int, default=4)
    p.add_argument("--supervision-views", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=cmd_dataset)

    p = sub.add_parser("convert-weights", help="convert the released GTR ckpt.pth to .safetensors + .json")
    p.add_argument("checkpoint", type=Path, help="the released checkpoint (ckpt.pth)")
    p.add_argument("output", type=Path, help="the .safetensors file to write (its .json is written beside it)")
    p.add_argument("--preset", default="gtr-paper", choices=sorted(PRESETS))
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="storage precision")
    p.set_defaults(run=cmd_convert_weights)

    p = sub.add_parser("eval", help="the evaluation protocol on a folder of meshes or rendered view sets")
    p.add_argument("input", type=Path, help="folder of GLB/OBJ/PLY meshes, GSO folders or NAME/{inputs,eval} view sets")
    p.add_argument("-o", "--output", type=Path, default=Path("eval-results"), help="results folder (resumable)")
    p.add_argument("--weights", type=Path, help="weights file (default: the bundled starter weights)")
    p.add_argument("--device", default="auto")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help="which variants to run")
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
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("report", help="rebuild the results page from the measurement files in a folder")
    p.add_argument("folder", type=Path, nargs="?", default=Path("docs/results"), help="default: docs/results")
    p.add_argument("-o", "--output", type=Path, default=Path("docs/RESULTS.md"), help="default: docs/RESULTS.md")
    p.set_defaults(run=cmd_report)

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
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.command_line = "gtr " + shlex.join(list(argv) if argv is not None else sys.argv[1:])
    try:
        return int(args.run(args))
    except GTRError as error:
        print(f"gtr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gtr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
