"""Evaluate the default pipeline with one of its design choices taken out, for the results' comparison table:

    .venv/bin/python scripts/ablations.py no-clean [--output docs/results] [--assets examples/evalset]

Each ablation swaps one piece of the reconstruction for what it was before that piece existed, in this process
only, then runs `gtr eval` (refined variant, CPU, 256 px) and writes `compare-cpu-<n>-<name>.json` into
`--output`, labelled with what was taken out. The choices themselves are options of the stages (their defaults
are the product's); nothing here changes what users get. Choices that are user options already
(`--no-geometry-refine`, `--geometry-steps 0`, `--texture-from-views off`) are compared with plain `gtr eval`
runs instead (docs/results/notes-9-clean-shapes.md lists the commands).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _no_clean() -> None:
    from gtr_backend import reconstruction

    reconstruction.clean_surface = lambda mesh, views, options, rasterizer: mesh  # type: ignore[assignment]


def _no_membrane() -> None:
    from gtr_backend import reconstruction
    from gtr_backend.mesh.clean import CleanOptions

    def options(membrane: float = 0.0) -> CleanOptions:  # whatever share the carving suggests: none
        return CleanOptions(membrane=0.0)

    reconstruction.CleanOptions = options  # type: ignore[assignment,misc]


def _field_fill() -> None:
    from gtr_backend.refine import projection

    projection.ProjectionOptions = functools.partial(projection.ProjectionOptions, calm=False)  # type: ignore[misc]


def _no_agreement() -> None:
    from gtr_backend.refine import projection

    projection.ProjectionOptions = functools.partial(projection.ProjectionOptions, agreement=0.0)  # type: ignore[misc]


def _no_network_carve() -> None:
    from gtr_backend import reconstruction

    reconstruction.CarveOptions = functools.partial(reconstruction.CarveOptions, empty_ratio=0.0)  # type: ignore[misc]


# name -> (file number, label, what to swap)
ABLATIONS: dict[str, tuple[int, str, Callable[[], None]]] = {
    "no-clean": (5, "default without the clean stage (no membrane, no normal filter)", _no_clean),
    "no-membrane": (6, "default without the membrane over unseen surface (normal filter kept)", _no_membrane),
    "field-fill": (7, "default, unseen texels filled from the colour field only (no calm fill)", _field_fill),
    "no-agreement": (8, "default without fading views the others outvote", _no_agreement),
    "no-network-carve": (9, "default, the network carves nothing the masks keep (empty_ratio 0)", _no_network_carve),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(ABLATIONS))
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "results")
    parser.add_argument("--assets", type=Path, default=ROOT / "examples" / "evalset")
    args = parser.parse_args()
    number, label, swap = ABLATIONS[args.name]
    sys.path.insert(0, str(ROOT))
    swap()
    from gtr_backend.cli import main as gtr

    work = Path(tempfile.mkdtemp(prefix=f"gtr-ablation-{args.name}-"))
    command = ["eval", str(args.assets), "-o", str(work), "--device", "cpu", "--size", "256", "--variants", "refined"]
    status = gtr([*command, "--no-sheets", "--quiet", "--label", label])
    if status:
        raise SystemExit(status)
    args.output.mkdir(parents=True, exist_ok=True)
    target = args.output / f"compare-cpu-{number}-{args.name}.json"
    results = json.loads((work / "results.json").read_text())
    results["command"] = f"python scripts/ablations.py {args.name}"
    target.write_text(json.dumps(results, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
