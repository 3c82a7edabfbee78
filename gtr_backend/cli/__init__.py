"""The `gtr` command: reconstruct, views, convert-weights, train, campaign, dataset, eval, report, bench and
build-rasterizer.

One module per subcommand, each with its `register(sub)` (its arguments) and its `run(args)`; the options
they share (view sets, the reconstruction's options, progress) are in `common`. Errors a user can fix are
printed as one plain message (exit status 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from ..errors import GTRError
from . import bench, build_rasterizer, campaign, convert, dataset, evaluate, reconstruct, report, train, views
from .common import options_from_arguments

# in `gtr --help` order
COMMANDS = (views, reconstruct, train, campaign, dataset, convert, evaluate, report, bench, build_rasterizer)

__all__ = ["build_parser", "main", "options_from_arguments"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gtr", description="GTR: posed views of an object in, 3D out.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
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
