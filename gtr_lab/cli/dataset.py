"""`gtr dataset -o FOLDER`: render training assets (procedural objects and/or meshes) into a folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gtr_backend.cli.common import add_device_argument, progress_bar
from gtr_backend.errors import GTRError


def register(sub: Any) -> None:
    p = sub.add_parser("dataset", help="render training assets (procedural objects and/or meshes) into a folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="the dataset folder to write")
    p.add_argument("--objects", type=int, default=0, help="procedural objects (seeds 0..N-1)")
    p.add_argument("--meshes", type=Path, help="a folder of textured meshes (GLB, OBJ, PLY) to add")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--input-views", type=int, default=4)
    p.add_argument("--supervision-views", type=int, default=8)
    add_device_argument(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    from gtr_backend.devices import resolve_device

    from ..evaluation.protocol import load_mesh_file, normalize_mesh
    from ..evaluation.runner import MESH_SUFFIXES
    from ..training import ViewSampling, random_object, write_dataset

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
