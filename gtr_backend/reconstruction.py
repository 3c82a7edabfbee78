"""Posed views in, textured mesh out: the whole GTR pipeline behind one function.

    views --model--> triplane --density grid--> sdf --marching cubes--> mesh [--simplify]
          --texture refinement (fixed geometry)--> refined colour field --xatlas + bake--> textured mesh

`reconstruct` reports progress through a callback (stage name, overall fraction in [0, 1]) and checks a
cancel callback between stages and between refinement steps, raising `CancelledError`. Stage times are measured
with the device synchronised. Everything is in the world frame (Y up, object in [-1, 1]^3).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .errors import CancelledError, GTRError
from .export import bake_texture, bake_vertex_colors, unwrap, write_mesh
from .mesh import DENSITY_LEVEL, Mesh, sdf_to_mesh, simplify
from .mesh.extract import McBackend, density_grid
from .model import GTR, Precision
from .model.fields import TriplaneField, sample_triplane
from .pipeline import predict_triplane
from .refine import ColorField, RefineOptions, RefineResult, refine_texture
from .refine.texture import RefineParams
from .render.raster import RasterBackend, get_rasterizer
from .views import ViewSet
from .weights import load_model

ProgressFn = Callable[[str, float], None]
CancelFn = Callable[[], bool]

# Share of the whole run each stage is shown as taking, for one progress bar.
STAGE_SHARE = {
    "triplane": 0.1,
    "density grid": 0.1,
    "marching cubes": 0.1,
    "simplify": 0.05,
    "refine": 0.35,
    "unwrap": 0.2,
    "bake": 0.1,
}


@dataclass(frozen=True)
class ReconstructOptions:
    mesh_resolution: int | None = None  # grid points per side; None: 256 on CUDA, 128 on the CPU
    refine_steps: int = 20
    refine_params: RefineParams = "both"
    refine_resolution: int | None = None  # input views are fitted at this size; None: the model's input size
    texture_size: int = 1024
    target_faces: int = 20000  # simplify to about this many faces before unwrapping; 0 keeps every face
    vertex_colors: bool = False  # colour per vertex instead of a UV texture
    precision: Precision = "auto"
    rasterizer: RasterBackend = "auto"
    marching_cubes: McBackend = "auto"

    def __post_init__(self) -> None:
        if not 16 <= self.texture_size <= 4096:
            raise GTRError(f"texture size must be between 16 and 4096, got {self.texture_size}")
        if self.mesh_resolution is not None and not 16 <= self.mesh_resolution <= 1024:
            raise GTRError(f"mesh resolution must be between 16 and 1024, got {self.mesh_resolution}")
        if self.refine_steps < 0 or self.target_faces < 0:
            raise GTRError("refinement steps and the face count cannot be negative")


@dataclass
class Reconstruction:
    mesh: Mesh  # on the CPU, textured (uv + texture) or with vertex colours
    triplane: Tensor  # (3, C, R, R), unrefined
    colors: ColorField  # the (refined) colour field the texture was baked from
    refinement: RefineResult | None
    device: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def save(self, path: Path | str) -> list[Path]:
        """Write the mesh (.glb, .obj or .ply); adds the time it took to `timings["export"]`."""
        start = time.perf_counter()
        written = write_mesh(self.mesh, path)
        self.timings["export"] = time.perf_counter() - start
        return written


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" -> CUDA when PyTorch sees a GPU, else the CPU; asking for CUDA without one is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        build = (
            "without CUDA" if torch.version.cuda is None else f"with CUDA {torch.version.cuda}, but no GPU is visible"
        )
        raise GTRError(f"CUDA was requested, but this PyTorch ({torch.__version__}) is built {build}; use --device cpu")
    return resolved


class _Stages:
    """Times stages, reports progress and honours cancellation."""

    def __init__(self, device: torch.device, progress: ProgressFn | None, cancel: CancelFn | None) -> None:
        self.device, self.progress, self.cancel = device, progress, cancel
        self.timings: dict[str, float] = {}
        self.done = 0.0

    def check(self) -> None:
        if self.cancel and self.cancel():
            raise CancelledError("reconstruction cancelled")

    def report(self, stage: str, within: float) -> None:
        self.check()
        if self.progress:
            self.progress(stage, min(1.0, self.done + STAGE_SHARE.get(stage, 0.0) * within))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.report(name, 0.0)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        except torch.cuda.OutOfMemoryError:
            raise GTRError(
                f"out of GPU memory during '{name}': lower --mesh-resolution (e.g. 192), --texture-size or the "
                "refinement resolution, close other programs using the GPU, or use --device cpu"
            ) from None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[name] = time.perf_counter() - start
        self.done += STAGE_SHARE.get(name, 0.0)
        self.report(name, 0.0)


def reconstruct(
    views: ViewSet,
    weights: GTR | Path | str,
    device: str | torch.device = "auto",
    options: ReconstructOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Reconstruction:
    """Reconstruct a textured mesh from posed views with a model (or the path of its weights)."""
    options = options or ReconstructOptions()
    target = resolve_device(device)
    stages = _Stages(target, progress, cancel)
    if isinstance(weights, GTR):
        model = weights.to(target)
    else:
        with stages.stage("load weights"):
            model = load_model(weights, target)
    model.eval()
    size = options.refine_resolution or model.config.image_size
    with stages.stage("triplane"):
        triplane = predict_triplane(model, views, options.precision)
    return _mesh_and_texture(model.field, triplane, views.to(target).resized(size), options, stages)


def reconstruct_from_triplane(
    field: TriplaneField,
    triplane: Tensor,
    views: ViewSet,
    options: ReconstructOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> Reconstruction:
    """The stages after the network: triplane (3, C, R, R) and its field -> textured mesh fitted to `views`
    (moved to the triplane's device; pass them at the resolution the refinement should fit)."""
    stages = _Stages(triplane.device, progress, cancel)
    return _mesh_and_texture(field, triplane, views.to(triplane.device), options or ReconstructOptions(), stages)


def _mesh_and_texture(
    field: TriplaneField, triplane: Tensor, views: ViewSet, options: ReconstructOptions, stages: _Stages
) -> Reconstruction:
    device = triplane.device
    rasterizer = get_rasterizer(device, options.rasterizer)
    resolution = options.mesh_resolution or (256 if device.type == "cuda" else 128)

    def density(points: Tensor) -> Tensor:
        return field.density(sample_triplane(triplane[None], points[None])[0])

    with stages.stage("density grid"), torch.no_grad():
        sdf = -(density_grid(density, resolution, device) - DENSITY_LEVEL)
    with stages.stage("marching cubes"):
        mesh = sdf_to_mesh(sdf, options.marching_cubes)
    del sdf
    if options.target_faces and mesh.num_faces > options.target_faces:
        with stages.stage("simplify"):
            mesh = simplify(mesh, options.target_faces)

    refinement = None
    colors = ColorField(triplane, field)
    if options.refine_steps > 0:
        with stages.stage("refine"):
            refine_options = RefineOptions(steps=options.refine_steps, params=options.refine_params)
            refinement = refine_texture(
                field, triplane, mesh, views, refine_options, rasterizer, progress=lambda f: stages.report("refine", f)
            )
            colors = refinement.colors

    if options.vertex_colors:
        with stages.stage("bake"):
            textured = bake_vertex_colors(mesh, colors)
    else:
        with stages.stage("unwrap"):
            unwrapped = unwrap(mesh, options.texture_size)
        with stages.stage("bake"):
            texture = bake_texture(unwrapped, colors, options.texture_size, rasterizer)
            textured = Mesh(unwrapped.vertices, unwrapped.faces, uv=unwrapped.uv, texture=texture)
    if stages.progress:
        stages.progress("done", 1.0)
    return Reconstruction(textured.to("cpu"), triplane, colors, refinement, str(device), stages.timings)
