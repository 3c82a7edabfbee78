"""The evaluation protocol (docs/method.md, section 7) as code: assets in, per-asset and mean metrics out.

For each ground-truth asset (a textured mesh file, or a procedural object), centred on its bounding box and
scaled into the sphere of radius `VIEW_RADIUS` (0.8, where the training objects live), which the default cameras
(distance 2.7, FoV 40 deg) always see whole; a mesh scaled into [-1, 1]^3 instead would reach past the image's
edges (a cube's corners lie 1.7 from its centre):
1. render the input views (4 by default: azimuths 0/90/180/270 at `input_elevation_deg`) and 20 evaluation
   views on an orbit (uniform azimuths, elevations cycling through -30, 0, 30 deg), RGBA at `size`;
2. reconstruct with each variant: "feed-forward" (the mesh, no refinement), "refined" (texture refinement),
   "nerf" (volume rendering of the triplane: images only) and "visual-hull" (the learning-free baseline);
3. image metrics on the evaluation views over white (PSNR, SSIM; LPIPS only with a backbone, else n/a);
4. shape metrics as the paper states them: the ground truth scaled into [-1, 1]^3 (longest side 2), the
   prediction re-centred and scaled onto its bounding box and ICP-aligned; Chamfer distance x100 on 16,000
   surface points each, and volume IoU.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from gtr_backend.contract import ORBIT_AZIMUTHS_DEG, ORBIT_DISTANCE, ORBIT_ELEVATION_DEG, ORBIT_FOV_DEG, VIEW_RADIUS
from gtr_backend.errors import GTRError
from gtr_backend.fidelity import fidelity
from gtr_backend.mesh import Mesh
from gtr_backend.metrics import psnr, ssim
from gtr_backend.model import GTR
from gtr_backend.reconstruction import (
    ReconstructOptions,
    Stages,
    geometry_stage,
    predict_triplane,
    texture_stage,
    texture_views,
)
from gtr_backend.render import VolumeOptions, render_mesh, render_triplane
from gtr_backend.render.raster import Rasterizer, get_rasterizer
from gtr_backend.views.cameras import intrinsics_from_fov, orbit_poses
from gtr_backend.views.loaders import ZERO123PP_FOV_DEG, zero123pp_poses
from gtr_backend.views.viewset import ViewSet

from ..lpips import LPIPS, lpips_distance
from ..synthetic.objects import ProceduralObject, render_object
from .align import icp
from .metrics import chamfer_distance, flatness, sample_surface, volume_iou
from .visual_hull import visual_hull

VARIANTS = ("feed-forward", "refined", "nerf", "visual-hull")
# Every metric, once: key (in results and JSON), column title, number format.
METRICS = (
    ("psnr", "PSNR ↑", "{:.2f}"),
    ("ssim", "SSIM ↑", "{:.3f}"),
    ("lpips", "LPIPS ↓", "{:.3f}"),
    ("chamfer_x100", "CD×100 ↓", "{:.2f}"),
    ("iou", "IoU ↑", "{:.3f}"),
    ("flatness", "flat % ↓", "{:.2f}"),  # RMS off-plane distance on the truth's flat faces, % of its size
    ("silhouette_iou", "mask IoU ↑", "{:.3f}"),  # the mesh vs the input masks: IoU of the worst input view
    ("input_psnr", "input PSNR ↑", "{:.2f}"),  # the textured mesh from the input cameras vs the inputs, in the masks
)
METRIC_KEYS = tuple(key for key, _, _ in METRICS)


@dataclass(frozen=True)
class EvalProtocol:
    input_azimuths_deg: tuple[float, ...] = ORBIT_AZIMUTHS_DEG
    input_elevation_deg: float = ORBIT_ELEVATION_DEG
    eval_views: int = 20
    eval_elevations_deg: tuple[float, ...] = (-30.0, 0.0, 30.0)
    fov_deg: float = ORBIT_FOV_DEG
    distance: float = ORBIT_DISTANCE
    size: int = 512
    surface_points: int = 16000
    iou_resolution: int = 64
    variants: tuple[str, ...] = VARIANTS
    input_cameras: str = "orbit"  # "orbit" (the azimuths and elevation above) or "zero123pp" (its 6 fixed views)

    def cameras(self, azimuths: list[float], elevations: list[float]) -> tuple[Tensor, Tensor]:
        c2w = orbit_poses(azimuths, elevations, self.distance).float()
        k = intrinsics_from_fov(self.fov_deg, self.size, self.size).float().expand(len(azimuths), 4)
        return k, c2w

    def input_views_cameras(self) -> tuple[Tensor, Tensor]:
        """(intrinsics (N, 4), c2w (N, 4, 4)) of the input views."""
        if self.input_cameras == "zero123pp":
            c2w = zero123pp_poses().float()
            return intrinsics_from_fov(ZERO123PP_FOV_DEG, self.size, self.size).float().expand(len(c2w), 4), c2w
        if self.input_cameras != "orbit":
            raise GTRError(f"unknown input camera preset {self.input_cameras!r}; known: orbit, zero123pp")
        n = len(self.input_azimuths_deg)
        return self.cameras(list(self.input_azimuths_deg), [self.input_elevation_deg] * n)

    def eval_cameras(self) -> tuple[Tensor, Tensor]:
        azimuths = [360.0 * i / self.eval_views + 9.0 for i in range(self.eval_views)]
        elevations = [self.eval_elevations_deg[i % len(self.eval_elevations_deg)] for i in range(self.eval_views)]
        return self.cameras(azimuths, elevations)


def describe_cameras(protocol: dict[str, Any]) -> str:
    """A protocol's cameras in one clause for reports, from the protocol as a report's JSON stores it
    (`dataclasses.asdict` of an `EvalProtocol`)."""
    p = protocol
    if p.get("input_cameras", "orbit") == "zero123pp":
        inputs = "the 6 Zero123++ input views"
    else:
        inputs = f"{len(p['input_azimuths_deg'])} input views at elevation {p['input_elevation_deg']:g} deg"
    evaluation = f"{p['eval_views']} evaluation views at {p['size']}x{p['size']}"
    return f"{inputs}, {evaluation}, FoV {p['fov_deg']:g} deg, distance {p['distance']:g}"


Renderer = Callable[[Tensor, Tensor, int], ViewSet]  # (intrinsics, c2w, size) -> views


@dataclass
class Asset:
    """A ground-truth object: a renderer of its views (or views rendered elsewhere) and, for the 3D metrics,
    its mesh in the frame of the views (None when only views are known: Chamfer and IoU read n/a)."""

    name: str
    mesh: Mesh | None
    render: Renderer | None = None
    source: str = ""
    rendered: tuple[ViewSet, ViewSet] | None = None  # (inputs, evaluation views) with their own cameras

    def views(self, protocol: EvalProtocol, device: torch.device) -> tuple[ViewSet, ViewSet]:
        """(input views, evaluation views) on `device`: rendered with the protocol's cameras, or as given."""
        if self.rendered is not None:
            return self.rendered[0].to(device), self.rendered[1].resized(protocol.size).to(device)
        assert self.render is not None
        k_in, c2w_in = (t.to(device) for t in protocol.input_views_cameras())
        k_ev, c2w_ev = (t.to(device) for t in protocol.eval_cameras())
        return self.render(k_in, c2w_in, protocol.size), self.render(k_ev, c2w_ev, protocol.size)


FRAMES = "v2: rendered inside radius 0.8, shape metrics in [-1, 1]^3"  # v1 cut large assets off at the edges


def normalization(vertices: Tensor, half_extent: float = 1.0) -> tuple[Tensor, float]:
    """(centre, scale) that put the bounding box's centre at the origin and its longest side at 2 * half_extent."""
    low, high = vertices.min(0).values, vertices.max(0).values
    return (low + high) / 2, 2 * half_extent / float((high - low).max().clamp_min(1e-12))


def view_normalization(vertices: Tensor, radius: float = VIEW_RADIUS) -> tuple[Tensor, float]:
    """(centre, scale) that put the bounding box's centre at the origin and the farthest vertex at `radius`."""
    centre, _ = normalization(vertices)
    return centre, radius / float((vertices - centre).norm(dim=-1).max().clamp_min(1e-12))


def normalize_mesh(mesh: Mesh, radius: float = VIEW_RADIUS) -> Mesh:
    """The mesh centred on its bounding box and scaled into the sphere of `radius` (see the module docstring)."""
    centre, scale = view_normalization(mesh.vertices, radius)
    return Mesh((mesh.vertices - centre) * scale, mesh.faces, mesh.uv, mesh.texture, mesh.vertex_colors)


def _gso_texture(path: Path) -> Path | None:
    """Google Scanned Objects keep `meshes/model.obj` and its image in `materials/textures/texture.png`."""
    candidate = path.parent.parent / "materials" / "textures" / "texture.png"
    return candidate if candidate.is_file() else None


def load_mesh_file(path: Path) -> Mesh:
    """A mesh file trimesh reads (GLB, OBJ + MTL + texture, PLY, ...) -> Mesh with its texture or colours."""
    try:
        loaded = trimesh.load(path, force="mesh")
    except Exception as error:
        raise GTRError(f"{path}: cannot read this mesh ({error})") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise GTRError(f"{path}: holds no triangles")
    vertices = torch.tensor(np.asarray(loaded.vertices), dtype=torch.float32)
    faces = torch.tensor(np.asarray(loaded.faces), dtype=torch.long)
    visual = loaded.visual
    if isinstance(visual, trimesh.visual.TextureVisuals) and visual.uv is not None:
        material = visual.material
        image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        if image is None and (gso := _gso_texture(path)) is not None:
            from PIL import Image

            image = Image.open(gso)
        if image is not None:
            texture = torch.tensor(np.asarray(image.convert("RGB")), dtype=torch.float32) / 255
            return Mesh(vertices, faces, uv=torch.tensor(np.asarray(visual.uv), dtype=torch.float32), texture=texture)
        visual = visual.to_color()
    if isinstance(visual, trimesh.visual.ColorVisuals) and len(visual.vertex_colors) == len(vertices):
        colours = np.asarray(visual.vertex_colors)[:, :3] / 255.0
        return Mesh(vertices, faces, vertex_colors=torch.tensor(colours, dtype=torch.float32))
    return Mesh(vertices, faces, vertex_colors=torch.full((len(vertices), 3), 0.7))  # untextured: light grey


def mesh_asset(name: str, mesh: Mesh, rasterizer: Rasterizer) -> Asset:
    mesh = normalize_mesh(mesh)

    def render(intrinsics: Tensor, c2w: Tensor, size: int) -> ViewSet:
        out = render_mesh(mesh.to(intrinsics.device), intrinsics, c2w, size, size, rasterizer, background=None)
        alpha = out.alpha.clamp(0, 1)
        rgb = torch.where(alpha > 0, out.rgb / alpha.clamp_min(1e-6), torch.ones_like(out.rgb)).clamp(0, 1)
        return ViewSet.from_tensors(rgb, alpha, intrinsics, c2w)

    return Asset(name, mesh, render, source=name)


def procedural_asset(obj: ProceduralObject, rasterizer: Rasterizer) -> Asset:
    centre, scale = view_normalization(obj.mesh.vertices)
    mesh = Mesh((obj.mesh.vertices - centre) * scale, obj.mesh.faces)

    def color(points: Tensor) -> Tensor:
        return obj.color(points / scale + centre.to(points.device))  # shade in the object's own frame

    normalized = ProceduralObject(mesh, color, obj.name)

    def render(intrinsics: Tensor, c2w: Tensor, size: int) -> ViewSet:
        return render_object(normalized, intrinsics, c2w, size, size, rasterizer)

    return Asset(obj.name, mesh, render, source=f"procedural {obj.name}")


@dataclass
class VariantResult:
    """One variant on one asset: its scores by `METRICS` key (a metric the variant has no answer for is None)
    and its renders at the evaluation cameras, for the contact sheet."""

    scores: dict[str, float | None]
    prediction: Tensor | None = field(default=None, repr=False)  # eval renders (N, 3, H, W)
    normals: Tensor | None = field(default=None, repr=False)  # world normals of the mesh as colours (N, 3, H, W)

    def metrics(self) -> dict[str, float | None]:
        """Every metric of `METRICS`, in its order."""
        return {key: self.scores.get(key) for key in METRIC_KEYS}


def image_metrics(prediction: Tensor, truth: ViewSet, lpips: LPIPS | None = None) -> tuple[float, float, float | None]:
    """PSNR, SSIM and LPIPS (None without its weights) of renders (N, 3, H, W) against `truth` over white."""
    target = truth.on_white()
    perceptual = float(lpips_distance(lpips, prediction, target).mean()) if lpips is not None else None
    return float(psnr(prediction, target).mean()), float(ssim(prediction, target).mean()), perceptual


def shape_metrics(predicted: Mesh, truth: Mesh, protocol: EvalProtocol) -> tuple[float, float, float | None]:
    """Chamfer x100, volume IoU and flatness (`metrics.flatness`; None when the truth has no large flat face) in
    the paper's frame: the truth scaled into [-1, 1]^3, the prediction matched to its bounding box, then ICP."""
    centre, unit = normalization(truth.vertices)
    truth = Mesh((truth.vertices - centre) * unit, truth.faces)
    truth_low, truth_high = truth.vertices.min(0).values, truth.vertices.max(0).values
    low, high = predicted.vertices.min(0).values, predicted.vertices.max(0).values
    scale = float((truth_high - truth_low).max() / (high - low).max().clamp_min(1e-12))
    vertices = (predicted.vertices - (low + high) / 2) * scale + (truth_low + truth_high) / 2
    truth_points = sample_surface(truth, protocol.surface_points, seed=1)
    moved_samples = sample_surface(Mesh(vertices, predicted.faces), protocol.surface_points, seed=2)
    _, transform = icp(moved_samples[::4].contiguous(), truth_points[::4].contiguous())
    aligned = Mesh(transform.apply(vertices), predicted.faces)
    points = sample_surface(aligned, protocol.surface_points, seed=2)
    chamfer = chamfer_distance(points, truth_points) * 100
    iou = volume_iou(aligned, truth, protocol.iou_resolution, bound=1.05)  # room for ICP's shift
    return chamfer, iou, flatness(aligned, truth, protocol.surface_points)


def evaluate_asset(
    asset: Asset,
    model: GTR,
    protocol: EvalProtocol,
    device: torch.device,
    options: ReconstructOptions | None = None,
    lpips: LPIPS | None = None,
) -> dict[str, VariantResult]:
    """All variants of the protocol on one asset."""
    rasterizer = get_rasterizer(device)
    inputs, truth = asset.views(protocol, device)
    k_ev, c2w_ev = truth.intrinsics, truth.c2w
    options = options or ReconstructOptions(texture_size=1024)
    results: dict[str, VariantResult] = {}
    fit_views = inputs.resized(model.config.image_size)
    triplane = predict_triplane(model, fit_views)
    sources = texture_views(inputs) if options.texture_from_views else None
    meshes = [v for v in protocol.variants if v in ("feed-forward", "refined")]
    stages = Stages(device)
    geometry = geometry_stage(model.field, triplane, fit_views, options, stages, rasterizer) if meshes else None

    def score(mesh: Mesh) -> VariantResult:
        render = render_mesh(mesh.to(device), k_ev, c2w_ev, truth.height, truth.width, rasterizer)
        p, s, lp = image_metrics(render.rgb, truth, lpips)
        shape = shape_metrics(mesh.to("cpu"), asset.mesh, protocol) if asset.mesh is not None else (None, None, None)
        chamfer, iou, flat = shape
        normals = (render.normals * 0.5 + 0.5) * render.alpha + (1 - render.alpha)
        faithful = fidelity(mesh, inputs, rasterizer)
        scores = {"psnr": p, "ssim": s, "lpips": lp, "chamfer_x100": chamfer, "iou": iou, "flatness": flat}
        scores |= {"silhouette_iou": faithful.mask_iou, "input_psnr": faithful.psnr}
        return VariantResult(scores, render.rgb.cpu(), normals.cpu())

    for variant in protocol.variants:
        if variant in ("feed-forward", "refined"):
            assert geometry is not None
            steps = options.refine_steps if variant == "refined" else 0
            variant_options = dataclasses.replace(options, refine_steps=steps)
            textured, _, _ = texture_stage(
                model.field, triplane, geometry.mesh, fit_views, sources, variant_options, stages, rasterizer
            )
            results[variant] = score(textured)
        elif variant == "nerf":
            with torch.no_grad():
                render = render_triplane(
                    model.field, triplane, k_ev, c2w_ev, truth.height, truth.width, VolumeOptions(num_samples=128)
                )
            p, s, lp = image_metrics(render.rgb, truth, lpips)
            results[variant] = VariantResult({"psnr": p, "ssim": s, "lpips": lp}, render.rgb.cpu())
        elif variant == "visual-hull":
            results[variant] = score(visual_hull(inputs.resized(min(protocol.size, 256)), 96, rasterizer))
        else:
            raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    return results


def summarize(rows: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """Mean of every metric per variant over assets ({asset: {variant: metrics}} -> {variant: means})."""
    means: dict[str, dict[str, float | None]] = {}
    variants = sorted({v for per_asset in rows.values() for v in per_asset}, key=lambda v: VARIANTS.index(v))
    for variant in variants:
        entries = [per_asset[variant] for per_asset in rows.values() if variant in per_asset]
        means[variant] = {}
        for metric in METRIC_KEYS:
            values = [e[metric] for e in entries if e.get(metric) is not None and not math.isnan(e[metric])]
            means[variant][metric] = float(np.mean(values)) if values else None
    return means
