"""`gtr campaign FOLDER`: a training campaign (stage 1, then stage 2) run in chunks of one device call each."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import GTRError
from ..files import atomic_write
from .common import add_device_argument

PROBE_JSON = "probe.json"
SHIPPED_MB_LIMIT = 60.0  # the bundled weights file stays under this


def register(sub: Any) -> None:
    p = sub.add_parser(
        "campaign",
        help="train stage 1 then stage 2 in chunks that each fit one GPU call, resuming from FOLDER",
        description="Without --new or --probe: run the campaign in FOLDER on for one chunk of --minutes. "
        "See gtr_backend/training/campaign.py for the folder's files.",
    )
    p.add_argument("folder", type=Path, help="the campaign folder (carried to the GPU machine and back)")
    p.add_argument("--new", action="store_true", help="start a campaign in FOLDER with the plan's defaults and --set")
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="with --new or --probe: change the plan, e.g. preset=gtr-base stage1_minutes=14 stage1.batch=8 "
        "sampling.size=128 init=gtr_backend/assets/gtr-small-starter.safetensors",
    )
    p.add_argument("--minutes", type=float, default=8.0, help="wall time of this chunk in all (default: 8)")
    p.add_argument("--probe", nargs="+", metavar="PRESET", help="measure these presets first (stage 1, new models)")
    p.add_argument("--probe-minutes", type=float, default=3.0, help="training minutes per probed preset")
    add_device_argument(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..reconstruction import resolve_device
    from ..training.campaign import Campaign, CampaignPlan, run_chunk

    device = resolve_device(args.device)
    if args.probe:
        return _probe(args, device)
    if args.new:
        campaign = Campaign.create(args.folder, CampaignPlan().changed(args.set))
        print(f"started a campaign in {args.folder}: {campaign.plan.preset}, stage {campaign.stage} first")
        return 0
    if args.set:
        raise GTRError("--set changes the plan only with --new or --probe; a running campaign keeps its plan")
    campaign = run_chunk(args.folder, device, args.minutes, say=lambda text: print(text, file=sys.stderr))
    state = "done: " + str(args.folder / "weights.safetensors") if campaign.done else f"next: stage {campaign.stage}"
    print(f"{campaign.summary()}; {state}")
    return 0


def _probe(args: argparse.Namespace, device: Any) -> int:
    """Probe the presets; write probe.json; a campaign not yet started takes the best preset that ships."""
    from ..model import PRESETS
    from ..training.campaign import Campaign, CampaignPlan, probe

    unknown = [name for name in args.probe if name not in PRESETS]
    if unknown:
        raise GTRError(f"unknown preset(s) {', '.join(unknown)}; known: {', '.join(sorted(PRESETS))}")
    started = (args.folder / "campaign.json").is_file()
    plan = Campaign.open(args.folder).plan if started else CampaignPlan().changed(args.set)
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    results = probe(plan, args.probe, device, args.probe_minutes, say)
    args.folder.mkdir(parents=True, exist_ok=True)
    atomic_write(args.folder / PROBE_JSON, json.dumps(results, indent=2) + "\n")
    shippable = [r for r in results if r["shipped_mb"] < SHIPPED_MB_LIMIT]
    if shippable and not started:
        Campaign.create(args.folder, plan.changed([f"preset={shippable[0]['preset']}"]))
        print(f"started a campaign in {args.folder} with {shippable[0]['preset']} (the most learnt in the time)")
    elif started:
        print(f"{args.folder} had begun already; its preset stays {plan.preset}")
    return 0
