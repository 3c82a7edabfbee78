"""`gtr campaign FOLDER`: a training campaign (stage 1, then stage 2) run in chunks of one GPU job each (a cluster
queue's job with a wall-time limit, a cloud or preemptible machine): each job runs one chunk of `--minutes`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from gtr_backend.cli.common import add_device_argument
from gtr_backend.errors import GTRError
from gtr_backend.files import atomic_write

PROBE_JSON = "probe.json"


def _minutes(text: str) -> float:
    """A positive, finite number of minutes (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"minutes must be a positive number, got {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "campaign",
        help="train stage 1 then stage 2 in chunks that each fit one GPU job's wall time, resuming from FOLDER",
        description="Without --new, --probe or --status: train the campaign in FOLDER on for one chunk of "
        "--minutes. See gtr_lab/training/campaign.py for the folder's files.",
    )
    p.add_argument("folder", type=Path, help="the campaign folder (shared by the jobs, or copied to each and back)")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--new", action="store_true", help="start a campaign in FOLDER with the plan's defaults and --set"
    )
    p.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="with --new or --probe: change the plan, e.g. preset=gtr-base stage1_minutes=14 stage1.batch=8 "
        "sampling.size=128 init=gtr_backend/assets/gtr-small-starter.safetensors",
    )
    p.add_argument(
        "--minutes", type=_minutes, default=8.0, help="this chunk's wall time in all: the job's limit (default: 8)"
    )
    what.add_argument("--probe", nargs="+", metavar="PRESET", help="measure these presets first (stage 1, new models)")
    p.add_argument("--probe-minutes", type=_minutes, default=3.0, help="training minutes per probed preset")
    what.add_argument(
        "--status",
        action="store_true",
        help="train nothing: show the progress, delete shards of earlier chunks, write the weights when done",
    )
    add_device_argument(p)
    p.set_defaults(run=run)


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from gtr_backend.devices import resolve_device

    from ..training.campaign import CAMPAIGN_JSON, WEIGHTS, Campaign, CampaignPlan, run_chunk

    if args.folder.exists() and not args.folder.is_dir():
        raise GTRError(f"{args.folder}: is a file; a campaign needs a folder of its own")
    started = (args.folder / CAMPAIGN_JSON).is_file()
    if args.set and (started or not (args.new or args.probe)):
        raise GTRError("--set changes the plan only when it starts (--new or --probe); a campaign keeps its plan")
    if args.probe:
        return _probe(args, resolve_device(args.device), started)
    if args.new:
        campaign = Campaign.create(args.folder, CampaignPlan().changed(args.set))
        print(f"started a campaign in {args.folder}: {campaign.plan.preset}, stage {campaign.stage} first")
        return 0
    if args.status:
        campaign = Campaign.open(args.folder)
        for name in campaign.prune():
            _say(f"deleted {name} (an earlier chunk's)")
        if campaign.done and not (args.folder / WEIGHTS).is_file():
            _say(f"wrote {campaign.export()}")
    else:
        campaign = run_chunk(args.folder, resolve_device(args.device), args.minutes, say=_say)
    state = f"done: {args.folder / WEIGHTS}" if campaign.done else f"next: stage {campaign.stage}"
    print(f"{campaign.summary()}; {state}")
    return 0


def _probe(args: argparse.Namespace, device: Any, started: bool) -> int:
    """Probe the presets; write probe.json; a campaign not yet started takes the best preset that travels."""
    from gtr_backend.model import PRESETS, preset

    from ..training.campaign import Campaign, CampaignPlan, probe, travels

    unknown = [name for name in args.probe if name not in PRESETS]
    if unknown:
        raise GTRError(f"unknown preset(s) {', '.join(unknown)}; known: {', '.join(sorted(PRESETS))}")
    plan = Campaign.open(args.folder).plan if started else CampaignPlan().changed(args.set)
    too_big = [name for name in args.probe if not travels(preset(name), plan.carry_mib)]
    if too_big:
        raise GTRError(f"{', '.join(too_big)}: too large for a campaign (its carry_mib, the add-on); probe others")
    if plan.init and not started:
        raise GTRError("--probe trains new models of each preset; leave init out (start with --new to use it)")
    results = probe(plan, args.probe, device, args.probe_minutes, _say)
    args.folder.mkdir(parents=True, exist_ok=True)
    atomic_write(args.folder / PROBE_JSON, json.dumps(results, indent=2) + "\n")
    if started:
        print(f"{args.folder} had begun already; its preset stays {plan.preset}")
    else:
        best = results[0]["preset"]
        Campaign.create(args.folder, plan.changed([f"preset={best}"]))
        print(f"started a campaign in {args.folder} with {best} (the most learnt in the time)")
    return 0
