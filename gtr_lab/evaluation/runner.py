"""`gtr eval`: find the assets in a folder, evaluate each with every variant, write tables and contact sheets.

What a folder may hold (mixed freely):
- mesh files at its top level: `*.glb`, `*.gltf`, `*.obj` (+ MTL and texture), `*.ply`;
- Google Scanned Objects folders: `<name>/meshes/model.obj` with `<name>/materials/textures/texture.png`;
- view sets rendered elsewhere: `<name>/inputs/` and `<name>/eval/`, each a view folder the backend reads
  (`cameras.json`), plus an optional `<name>/mesh.glb` (or .obj/.ply) for the 3D metrics.

The run is resumable: every asset's metrics are written to `<out>/assets/<name>.json` (with a fingerprint of
the protocol, options and weights) as soon as it is done, and a rerun with the same settings skips it.
Outputs: `<out>/results.json`, `<out>/results.md` and `<out>/sheets/<name>.png`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from gtr_backend.devices import device_label
from gtr_backend.errors import GTRError
from gtr_backend.files import atomic_write
from gtr_backend.model import GTR
from gtr_backend.reconstruction import ReconstructOptions
from gtr_backend.render.raster import Rasterizer
from gtr_backend.views import load_views

from ..lpips import LPIPS
from .markdown import number, table
from .protocol import (
    FRAMES,
    METRICS,
    VARIANTS,
    Asset,
    EvalProtocol,
    VariantResult,
    describe_cameras,
    evaluate_asset,
    load_mesh_file,
    mesh_asset,
    normalize_mesh,
    summarize,
)

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply")


def find_assets(folder: Path, rasterizer: Rasterizer) -> list[Asset]:
    """Every asset in `folder` (see the module docstring), sorted by name; a clear error when there is none."""
    if folder.is_file() and folder.suffix.lower() in MESH_SUFFIXES:
        return [mesh_asset(folder.stem, load_mesh_file(folder), rasterizer)]
    if not folder.is_dir():
        raise GTRError(f"{folder}: no such folder (give a folder of meshes or rendered view sets)")
    assets = []
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in MESH_SUFFIXES:
            assets.append(mesh_asset(path.stem, load_mesh_file(path), rasterizer))
        elif (path / "meshes" / "model.obj").is_file():
            assets.append(mesh_asset(path.name, load_mesh_file(path / "meshes" / "model.obj"), rasterizer))
        elif (path / "inputs").is_dir() and (path / "eval").is_dir():
            meshes = [m for m in sorted(path.glob("mesh.*")) if m.suffix.lower() in MESH_SUFFIXES]
            truth = normalize_mesh(load_mesh_file(meshes[0])) if meshes else None
            rendered = (load_views(path / "inputs"), load_views(path / "eval"))
            assets.append(Asset(path.name, truth, source=str(path), rendered=rendered))
    if not assets:
        raise GTRError(
            f"{folder}: found no assets; expected mesh files ({', '.join(MESH_SUFFIXES)}), GSO folders "
            "(NAME/meshes/model.obj) or rendered view sets (NAME/inputs and NAME/eval with cameras.json)"
        )
    return assets


@dataclass(frozen=True)
class EvalSettings:
    protocol: EvalProtocol
    options: ReconstructOptions
    weights: str  # the weights file's name, shown in every row
    lpips: bool
    weights_digest: str = ""  # the weights' content (`content_digest`): retrained weights under the same name
    # never reuse another file's cached results
    # What the run writes beside the scores (not part of the cache key):
    sheets: bool = True  # a contact-sheet PNG per asset
    label: str = ""  # a name for this configuration in comparison tables
    command: str = ""  # the command line, recorded in the report
    device_settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the device resolved to
    # (grid, precision, rasterizer, marching cubes), recorded so runs on two devices can be compared

    def fingerprint(self) -> str:
        text = json.dumps(
            {
                "protocol": dataclasses.asdict(self.protocol),
                "frames": FRAMES,
                "options": repr(self.options),
                "weights": self.weights,
                "weights_digest": self.weights_digest,
                "lpips": self.lpips,
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def content_digest(path: Path) -> str:
    """SHA-256 (hex, 16 characters) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _tiles(images: Tensor, size: int) -> list[np.ndarray]:
    small = F.interpolate(images.float().clamp(0, 1), size=(size, size), mode="area")
    return [(t.permute(1, 2, 0).numpy() * 255).astype(np.uint8) for t in small]


def contact_sheet(
    inputs: Tensor, truth: Tensor, results: dict[str, VariantResult], path: Path, tile: int = 160, columns: int = 4
) -> None:
    """One PNG: the input views, then ground truth, each variant and the refined mesh's normals at `columns`
    evenly spaced evaluation views, one labelled row each."""
    picks = np.linspace(0, truth.shape[0] - 1, columns).round().astype(int).tolist()
    rows: list[tuple[str, Tensor]] = [("inputs", inputs), ("ground truth", truth[picks])]
    rows += [(name, r.prediction[picks]) for name, r in results.items() if r.prediction is not None]
    shaded = results.get("refined") or results.get("feed-forward")
    if shaded is not None and shaded.normals is not None:
        rows.append(("normals", shaded.normals[picks]))
    label_width = 130
    width = label_width + tile * max(columns, inputs.shape[0])
    sheet = Image.new("RGB", (width, tile * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(16)
    for r, (label, images) in enumerate(rows):
        draw.text((8, r * tile + tile // 2 - 8), label, fill="black", font=font)
        for c, image in enumerate(_tiles(images, tile)):
            sheet.paste(Image.fromarray(image), (label_width + c * tile, r * tile))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def run_evaluation(
    assets: list[Asset],
    model: GTR,
    settings: EvalSettings,
    out: Path,
    device: torch.device,
    lpips: LPIPS | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate every asset not already done with the same settings; write and return the report
    (`out`/results.json and results.md; per asset `out`/assets/NAME.json and sheets/NAME.png)."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    for index, asset in enumerate(assets):
        if progress:
            progress(asset.name, index, len(assets))
        rows[asset.name], seconds[asset.name] = _evaluate_once(asset, model, settings, out, device, lpips)
    if progress:
        progress("done", len(assets), len(assets))
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "command": settings.command,
        "label": settings.label,
        "hardware": device_label(device),
        "torch": torch.__version__,
        "weights": settings.weights,
        "model": model.config.name,
        "protocol": dataclasses.asdict(settings.protocol),
        "options": {k: v for k, v in dataclasses.asdict(settings.options).items() if isinstance(v, int | float | str)},
        "device_settings": settings.device_settings,
        "lpips": settings.lpips,
        "assets": rows,
        "seconds": seconds,
        "mean": summarize(rows),
    }
    atomic_write(out / "results.json", json.dumps(report, indent=2) + "\n")
    atomic_write(out / "results.md", report_markdown(report))
    return report


def _evaluate_once(
    asset: Asset, model: GTR, settings: EvalSettings, out: Path, device: torch.device, lpips: LPIPS | None
) -> tuple[dict[str, dict[str, Any]], float]:
    """One asset's metrics per variant and seconds: from its record in `out` when that was made with the same
    settings (the fingerprint), else evaluated now and recorded (with its contact sheet)."""
    fingerprint = settings.fingerprint()
    record = out / "assets" / f"{asset.name}.json"
    if record.is_file():
        saved = json.loads(record.read_text())
        if saved.get("fingerprint") == fingerprint:
            return saved["variants"], saved["seconds"]
    start = time.perf_counter()
    results = evaluate_asset(asset, model, settings.protocol, device, settings.options, lpips)
    seconds = time.perf_counter() - start
    variants = {name: r.metrics() for name, r in results.items()}
    if settings.sheets:
        inputs, truth = asset.views(settings.protocol, torch.device("cpu"))
        contact_sheet(inputs.on_white(), truth.on_white(), results, out / "sheets" / f"{asset.name}.png")
    saved = {"fingerprint": fingerprint, "source": asset.source, "variants": variants, "seconds": seconds}
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(record, json.dumps(saved, indent=2) + "\n")
    return variants, seconds


def metrics_table(per_variant: dict[str, dict[str, float | None]], weights: str, first: str = "variant") -> str:
    head = [first, "weights"] + [title for _, title, _ in METRICS]
    rows = []
    for variant, metrics in per_variant.items():
        shown = weights if variant != "visual-hull" else "none (learning-free)"
        rows.append([variant, shown] + [number(metrics.get(key), template) for key, _, template in METRICS])
    return table(head, rows)


def report_markdown(report: dict[str, Any]) -> str:
    """The mean table, then one table per asset."""
    parts = [
        f"{len(report['assets'])} assets, {report['hardware']}, torch {report['torch']}, {report['date']}; "
        f"weights `{report['weights']}` ({report['model']}); {describe_cameras(report['protocol'])}. LPIPS: "
        + ("AlexNet weights given." if report["lpips"] else "n/a (no backbone weights given).")
        + _device_sentence(report.get("device_settings") or {})
        + "\n",
        "**Mean over assets**\n",
        metrics_table(report["mean"], report["weights"]),
    ]
    for name, variants in report["assets"].items():
        ordered = {v: variants[v] for v in sorted(variants, key=VARIANTS.index)}
        parts += [f"**{name}** ({report['seconds'][name]:.0f} s)\n", metrics_table(ordered, report["weights"])]
    return "\n".join(parts)


def _device_sentence(settings: dict[str, Any]) -> str:
    """How the run's device resolved its automatic settings, as a sentence (empty for older reports)."""
    if not settings:
        return ""
    return (
        f" On {settings['device']}: marching-cubes grid {settings['mesh_resolution']}, network in "
        f"{settings['precision']}, {settings['rasterizer']} rasterizer, {settings['marching_cubes']} marching cubes."
    )


__all__ = ["VARIANTS", "EvalSettings", "contact_sheet", "find_assets", "report_markdown", "run_evaluation"]
