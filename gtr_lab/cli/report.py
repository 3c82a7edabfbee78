"""`gtr report`: rebuild docs/RESULTS.md from the measurement files in docs/results/."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gtr_backend.files import atomic_write, check_output


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="rebuild the results page from the measurement files in a folder")
    p.add_argument("folder", type=Path, nargs="?", default=Path("docs/results"), help="default: docs/results")
    p.add_argument("-o", "--output", type=Path, default=Path("docs/RESULTS.md"), help="default: docs/RESULTS.md")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.report import results_page

    atomic_write(check_output(args.output, (".md",), "report"), results_page(args.folder))
    print(f"wrote {args.output}")
    return 0
