"""`gtr views INPUT`: load a view set, check it, and summarise its cameras (4 views at least)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import GTRError
from .common import add_view_arguments, views_from_arguments


def register(sub: Any) -> None:
    p = sub.add_parser("views", help="load a view set, check it and summarise its cameras")
    add_view_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..model import GTRConfig

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
