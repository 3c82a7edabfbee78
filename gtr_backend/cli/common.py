"""What several `gtr` commands share: reading a view set, the reconstruction's options (each from its one
definition in `contract.RECONSTRUCT_OPTIONS`), progress on a terminal or in a log."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..contract import DEVICES, RECONSTRUCT_OPTIONS
from ..views import Orbit, ViewSet, load_views

if TYPE_CHECKING:
    from ..reconstruction import ReconstructOptions

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
STAGE_BAR = "{desc:<16} {bar} {percentage:3.0f}% {elapsed}"


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def _finite(text: str) -> float:
    """A command-line number that is a real, finite one (not inf or nan)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _background(text: str) -> str | tuple[float, float, float]:
    if "," in text:
        values = _floats(text)
        if len(values) != 3:
            raise argparse.ArgumentTypeError("a background colour is three numbers in [0, 1], e.g. 1,1,1")
        return (values[0], values[1], values[2])
    return text


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """--device, with the devices of `contract.DEVICES` (one definition, also the add-on's menu)."""
    names = ", ".join(name if name != "cuda" else "cuda, cuda:N" for name in DEVICES)
    automatic = DEVICES["auto"][1]
    parser.add_argument(
        "--device", default="auto", help=f"{names} (default: auto, {automatic[0].lower()}{automatic[1:]})"
    )


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
    parser.add_argument("--elevation", type=_finite, default=Orbit.elevation_deg, help="orbit elevation, degrees")
    parser.add_argument("--fov", type=_finite, default=Orbit.fov_deg, help="orbit field of view, degrees")
    parser.add_argument("--distance", type=_finite, default=Orbit.distance, help="orbit camera distance")
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


def _faces(text: str) -> int | str:
    """--faces: a number of faces, "auto" (as few as the shape allows) or "auto:N" (that, at most N)."""
    if text == "auto" or text.startswith("auto:"):
        cap = text[5:]
        if cap and not (cap.isdigit() and int(cap) > 0):
            raise argparse.ArgumentTypeError(f"expected auto:N with N a positive number of faces, got {text!r}")
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of faces, auto or auto:N, got {text!r}") from None


def _faces_count(value: int | str) -> int:
    """The face count (the cap, with auto; 0: none) that a parsed --faces asks for."""
    if isinstance(value, int):
        return value
    return int(value[5:]) if value.startswith("auto:") else 0


def add_reconstruct_options(parser: argparse.ArgumentParser) -> None:
    """The reconstruction's options (reconstruct and eval), each with the default, range and help of its one
    definition in `contract.RECONSTRUCT_OPTIONS`."""
    option = RECONSTRUCT_OPTIONS

    def described(name: str) -> dict[str, Any]:
        value = option[name].default
        return {"default": value, "help": f"{option[name].help} (default {'on' if value is True else value})"}

    add = parser.add_argument
    add("--mesh-resolution", type=int, default=option["mesh_resolution"].default, help=option["mesh_resolution"].help)
    add("--no-geometry-refine", dest="geometry_refine", action="store_false", default=option["geometry_refine"].default,
        help="keep the network's shape as it is (no carving by the masks, no fill, no surface fit)")  # fmt: skip
    add("--geometry-steps", type=int, **described("geometry_steps"))
    add("--texture-from-views", type=_on_off, metavar="on|off", **described("texture_from_views"))
    add("--texture-views", choices=option["texture_views"].choices, **described("texture_views"))
    add("--refine-steps", type=int, **described("refine_steps"))
    add("--texture-size", type=int, **described("texture_size"))
    add("--faces", type=_faces, default=option["target_faces"].default, metavar="N|auto|auto:N",
        help=f"{option['target_faces'].help}; auto: {option['auto_faces'].help} (default "
        f"{option['target_faces'].default})")  # fmt: skip
    add("--lods", type=int, **described("lods"))
    add("--uv", choices=option["uv"].choices, **described("uv"))
    add("--normal-map", action="store_true", default=option["normal_map"].default, help=option["normal_map"].help)
    add("--vertex-colors", action="store_true", default=option["vertex_colors"].default,
        help=option["vertex_colors"].help)  # fmt: skip


def options_from_arguments(args: argparse.Namespace) -> ReconstructOptions:
    """The `ReconstructOptions` the parsed arguments of `add_reconstruct_options` (and reconstruct's own
    --refine-params, where present) ask for."""
    from ..reconstruction import ReconstructOptions

    return ReconstructOptions(
        mesh_resolution=args.mesh_resolution,
        geometry_refine=args.geometry_refine,
        geometry_steps=args.geometry_steps,
        texture_from_views=args.texture_from_views,
        texture_views=args.texture_views,
        refine_steps=args.refine_steps,
        refine_params=getattr(args, "refine_params", "both"),
        texture_size=args.texture_size,
        target_faces=_faces_count(args.faces),
        auto_faces=isinstance(args.faces, str),
        lods=args.lods,
        uv=args.uv,
        normal_map=args.normal_map,
        vertex_colors=args.vertex_colors,
    )


def progress_bar(quiet: bool, **options: Any) -> Any:
    """A tqdm bar on stderr when it is a terminal; when it is not (a log file, a pipe) or `quiet`, a disabled
    bar, so a log never fills with carriage-return updates."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=quiet or not sys.stderr.isatty(), **options)


def views_from_arguments(args: argparse.Namespace) -> ViewSet:
    """The view set the arguments name. Orbit options that will not be used (the input has its own cameras,
    or --orbit is missing) are said so on stderr rather than dropped without a word, and so are cameras that do
    not go around the object."""
    from ..views.loaders import own_cameras

    defaults = {"azimuths": None, "elevation": Orbit.elevation_deg, "fov": Orbit.fov_deg, "distance": Orbit.distance}
    orbit_options = [f"--{name}" for name, default in defaults.items() if getattr(args, name) != default]
    cameras = None if args.zero123pp else own_cameras(args.input)
    if cameras and (args.orbit or orbit_options):
        ignored = " ".join((["--orbit"] if args.orbit else []) + orbit_options)
        print(f"gtr: note: {args.input} has its own cameras ({cameras}); {ignored} ignored", file=sys.stderr)
    elif orbit_options and not args.orbit and not args.zero123pp:
        print(f"gtr: note: {' '.join(orbit_options)} apply only with --orbit; ignored", file=sys.stderr)
    orbit = Orbit(args.azimuths, args.elevation, args.fov, args.distance) if args.orbit and not cameras else None
    views = load_views(args.input, orbit=orbit, zero123pp=args.zero123pp, background=args.background)
    warning = views.camera_warning()
    if warning:
        print(f"gtr: warning: {args.input}: {warning}", file=sys.stderr)
    return views
