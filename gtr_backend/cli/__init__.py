"""The `gtr` command: the product's subcommands (views, reconstruct, convert-weights, build-rasterizer) and, when
the lab is installed, the lab's (train, campaign, dataset, eval, report, bench: `gtr_lab.cli`).

One module per subcommand, each with its `register(sub)` (its arguments) and its `run(args)`; the options
they share (view sets, the reconstruction's options, progress) are in `common`. Errors a user can fix are
printed as one plain message (exit status 2), never as a traceback. The product knows the lab only by the
name of its command package (`LAB`): without the lab (the Blender extension's bundled backend, say) its
subcommands are still listed, and running one says how to get it.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence
from types import ModuleType

from ..errors import GTRError
from . import build_rasterizer, convert, reconstruct, views
from .common import options_from_arguments

COMMANDS = (views, reconstruct, convert, build_rasterizer)  # in `gtr --help` order, then the lab's
LAB = "gtr_lab.cli"  # the lab's subcommands: its `COMMANDS`, modules like these
LAB_COMMANDS = {  # what `gtr --help` lists when the lab is not installed
    "train": "train stage 1 (NeRF) or 2 (mesh)",
    "campaign": "train in chunks, one GPU job each",
    "dataset": "render training assets into a folder",
    "eval": "the evaluation protocol",
    "report": "rebuild the results page",
    "bench": "time every stage and peak memory",
}
GET_THE_LAB = (
    "which comes with the lab (gtr_lab: training, evaluation, benchmarks), not installed here; install the "
    "project from a checkout of its repository with its development extras: pip install -e '.[dev]'"
)

__all__ = ["build_parser", "lab_commands", "main", "options_from_arguments"]


def lab_commands() -> tuple[ModuleType, ...] | None:
    """The lab's subcommand modules, or None when the lab is not installed."""
    try:
        lab = importlib.import_module(LAB)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] == LAB.split(".")[0]:
            return None
        raise
    return tuple(lab.COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gtr", description="GTR: posed views of an object in, 3D out.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    lab = lab_commands()
    if lab is not None:
        for command in lab:
            command.register(sub)
    else:
        for name, what in LAB_COMMANDS.items():
            sub.add_parser(name, help=f"{what} (the lab's: not installed)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(argv) if argv is not None else sys.argv[1:]
    if arguments and arguments[0] in LAB_COMMANDS and lab_commands() is None:
        print(f"gtr: error: 'gtr {arguments[0]}' is a lab command, {GET_THE_LAB}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(arguments)
    args.command_line = "gtr " + shlex.join(arguments)
    try:
        return int(args.run(args))
    except GTRError as error:
        print(f"gtr: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gtr: interrupted", file=sys.stderr)
        return 130
