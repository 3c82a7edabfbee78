"""`gtr report`: build `docs/RESULTS.md` from the measurement files in a results folder.

The folder (`docs/results/` in the repository) holds what the measuring commands wrote, and the page is
rebuilt from it alone, so it never drifts from the numbers:
- `eval-*.json`: `gtr eval` reports (copied from its output folder's results.json);
- `compare-*.json`: `gtr eval --label NAME` reports of other configurations, one row each in a comparison;
- `bench-*.json`: `gtr bench --json` (every stage from views to GLB; requests to the backend server, cold and
  warm);
- `model-*.json`: `gtr bench --model-only --json` (the network alone, several precisions);
- `training-*.json`: `gtr bench --training --json` (stage-1 training steps: objects per second, peak memory);
- `blender-*.json`: `scripts/bench_blender.py` (the add-on: Reconstruct click to mesh in the scene);
- `sheets/*.png`: contact sheets from `gtr eval`, shown under the evaluation tables;
- `notes-*.md`: written notes included as they are (how the starter weights were trained, measurements whose
  raw files were not kept).
`scripts/results.sh` runs the measurements on this machine and then this command.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gtr_backend.errors import GTRError

from .bench import model_markdown, pipeline_markdown, requests_markdown, training_markdown
from .markdown import number, table
from .protocol import METRICS, summarize
from .runner import report_markdown

# docs/method.md, section 7 (the GTR paper, table 1, GSO, 4 input views). Quoted, not measured by this project.
PAPER_GSO: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("LRM", "20.45", "0.904", "0.126", "6.38", "0.352"),
    ("LGM", "25.23", "0.925", "0.066", "1.37", "0.601"),
    ("InstantMesh (mesh)", "24.44", "0.920", "0.080", "1.11", "0.646"),
    ("GTR feed-forward", "28.67", "0.946", "0.055", "0.74", "0.708"),
    ("GTR + texture refinement", "29.79", "0.960", "0.047", "", ""),
)


def paper_table() -> str:
    head = ["method (quoted from the GTR paper, GSO)", "PSNR ↑", "SSIM ↑", "LPIPS ↓", "CD×100 ↓", "IoU ↑"]
    return table(head, PAPER_GSO)


def blender_markdown(info: dict[str, Any]) -> str:
    s = info["settings"]
    lines = [
        f"Blender {info['blender']} (headless, bpy), {info['hardware']}, {info['date']}; the bundled example "
        f"(`examples/toy`, 4 views at 512x512) with the add-on's defaults: {s['refine_steps']} refinement steps, "
        f"{s['texture_size']}^2 texture, mesh resolution {s['mesh_resolution']} ({info['faces']} faces). The "
        "backend runs as a separate process; the first click also starts it (Python, torch) and loads the "
        "weights. Overhead = click to mesh minus the time the backend reports for the request.\n",
    ]
    rows = [
        [
            f"{i + 1}{' (cold)' if i == 0 else ''}",
            f"{run['click_to_mesh_s']:.2f}",
            f"{run['backend_s']:.2f}",
            f"{run['overhead_s']:.3f}",
        ]
        for i, run in enumerate(info["runs"])
    ]
    lines.append(table(["click", "click to mesh (s)", "backend (s)", "add-on overhead (s)"], rows).rstrip("\n"))
    lines.append(
        f"\nTarget: add-on overhead under 0.5 s. Measured: {info['warm_median_overhead_s']:.3f} s (median of the "
        f"warm clicks), at most {info['max_overhead_s']:.3f} s."
    )
    return "\n".join(lines) + "\n"


def merged_evaluations(paths: list[Path]) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """Evaluation files of one machine (`eval-<machine>.json`, `eval-<machine>-<part>.json`: variants run
    separately, e.g. the slow NeRF renders) merged into one report, so the variants stand side by side."""
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for path in paths:
        info = json.loads(path.read_text())
        machine = path.stem.split("-")[1]  # eval-<machine>[-<part>]
        if machine not in groups:
            groups[machine] = ({**info, "assets": {}, "seconds": {}}, [])
        merged, commands = groups[machine]
        for asset, variants in info["assets"].items():
            merged["assets"].setdefault(asset, {}).update(variants)
            merged["seconds"][asset] = merged["seconds"].get(asset, 0.0) + info["seconds"].get(asset, 0.0)
        merged["lpips"] = merged["lpips"] and info["lpips"]
        commands.append(info.get("command") or "(command not recorded)")
    for merged, _ in groups.values():
        merged["mean"] = summarize(merged["assets"])
    return groups


def comparison_table(reports: list[dict[str, Any]]) -> str:
    """One row per evaluation run (its label and variant): mean metrics, and the worst asset's mask IoU."""
    shown = ("psnr", "ssim", "chamfer_x100", "iou", "flatness", "input_psnr")  # mask IoU comes last, twice
    columns = [(key, label, template) for key, label, template in METRICS if key in shown]
    head = ["configuration", "variant", *(label for _, label, _ in columns)]
    head += ["mask IoU, mean ↑", "mask IoU, worst ↑", "s/asset"]
    rows = []
    for report in reports:
        seconds = sum(report["seconds"].values()) / max(len(report["seconds"]), 1)
        for variant, mean in report["mean"].items():
            masks = [a[variant].get("silhouette_iou") for a in report["assets"].values() if variant in a]
            worst = min((m for m in masks if m is not None), default=None)
            cells = [report.get("label") or "(unlabelled)", variant]
            cells += [number(mean.get(key), template) for key, _, template in columns]
            cells += [number(mean.get("silhouette_iou"), "{:.3f}"), number(worst, "{:.3f}"), f"{seconds:.0f}"]
            rows.append(cells)
    return table(head, rows)


def _command(info: dict[str, Any]) -> str:
    return f"`{info['command']}`" if info.get("command") else "(command not recorded)"


def results_page(folder: Path) -> str:
    if not folder.is_dir():
        raise GTRError(f"{folder}: no such results folder")
    parts = [
        "# Results\n",
        "Generated by `gtr report` from the files in `docs/results/` (run `bash scripts/results.sh` to measure "
        "again on this machine and rebuild this page). Every table names its hardware, date, weights and command.\n",
        "## Evaluation (`gtr eval`)\n",
        "The protocol of the GTR paper (docs/method.md, section 7) on the project's own evaluation set "
        "(`examples/evalset`, "
        "twelve textured objects with text, stripes, checks, dots, thin lines, a car on wheels and a bowl). "
        "Variants: the feed-forward mesh, "
        "with texture refinement, NeRF volume rendering of the triplane, and the learning-free visual hull carved "
        "from the input masks with colours projected from the input views.\n",
    ]
    evals = merged_evaluations(sorted(folder.glob("eval-*.json")))
    for name, (info, commands) in evals.items():
        parts += [
            f"### {info['hardware']} (eval-{name}*.json)\n",
            "Commands: " + "; ".join(f"`{c}`" for c in commands) + "\n",
            report_markdown(info),
        ]
    if not evals:
        parts.append("No evaluation files yet.\n")
    comparisons = sorted(folder.glob("compare-*.json"))
    if comparisons:
        parts += [
            "### Ways to make the result faithful to the views, compared\n",
            "Each row is one `gtr eval` run (its command below) with the same weights and views; the columns are "
            "means over the assets of the variant named. PSNR and SSIM are on the 20 evaluation views; input PSNR "
            "is the result seen from the 4 input cameras against the inputs, inside the masks (how faithfully it "
            "reproduces what it was given); mask IoU is the worst input view's (the mesh against the input masks), "
            "its mean and its lowest over the assets.\n",
            comparison_table([json.loads(p.read_text()) for p in comparisons]),
            "Commands: " + "; ".join(_command(json.loads(p.read_text())) for p in comparisons) + "\n",
        ]
    sheets = sorted((folder / "sheets").glob("*.png")) if (folder / "sheets").is_dir() else []
    if sheets:
        parts.append("Contact sheets of the first evaluation above (inputs, ground truth, each variant, normals):\n")
        parts += [f"![{p.stem}](results/sheets/{p.name})\n" for p in sheets]
    parts += [
        "### For comparison: the paper's numbers\n",
        "Quoted from the GTR paper (table 1: Google Scanned Objects, 4 input views), **not measured here**; they "
        "come from other data (GSO) and far larger training, so they are a yardstick, not a like-for-like row.\n",
        paper_table(),
        "## Speed and memory (`gtr bench`)\n",
        "Every stage from four 512x512 views to a GLB on disk. Random network weights (speed does not depend on "
        "them); the stages after the network run on a triplane of the same sizes fitted to a striped sphere. "
        "Each case runs in a fresh process; cells are the median of the warm runs with the first (cold) run in "
        "brackets. Peak memory is `torch.cuda.max_memory_allocated` on CUDA and the process's peak resident set "
        "on the CPU.\n",
    ]
    # (file pattern, heading for a file, table of its contents), in page order
    sections: list[tuple[str, Callable[[str, dict[str, Any]], str], Callable[[dict[str, Any]], str]]] = [
        (
            "bench-*.json",
            lambda stem, i: f"### {stem} ({i['date']}, torch {i['torch']})",
            lambda i: pipeline_markdown(i["runs"]) + "\n" + requests_markdown(i.get("requests", [])),
        ),
        (
            "model-*.json",
            lambda stem, i: f"### {stem}: the network alone ({i['date']}, torch {i['torch']})",
            lambda i: model_markdown(i["results"]),
        ),
        (
            "training-*.json",
            lambda stem, i: f"## Training throughput ({stem}, {i['date']}, torch {i['torch']})",
            lambda i: training_markdown(i["runs"]),
        ),
        (
            "blender-*.json",
            lambda stem, i: f"## The Blender add-on: Reconstruct click to mesh in the scene ({stem})",
            blender_markdown,
        ),
    ]
    for pattern, heading, body in sections:
        for path in sorted(folder.glob(pattern)):
            info = json.loads(path.read_text())
            parts += [heading(path.stem, info) + "\n", f"Command: {_command(info)}\n", body(info)]
    for path in sorted(folder.glob("notes-*.md")):
        parts.append(path.read_text().rstrip() + "\n")
    return "\n".join(parts)
