"""Posed views in, textured mesh out: the whole GTR pipeline as a sequence of reusable stages.

    views --resize once--> model views --network (`predict_triplane`)--> triplane
    geometry: triplane --density (only where the hull is)--> fused with the masks (carve + fill)
              --marching cubes--> mesh [--simplify] [--geometry fit: silhouettes, photometric, smooth]
              --clean: what no view sees becomes a taut membrane, flat faces are flattened (edges kept)
              (views that all know their depth, a capture's: their depth maps fused into the exact surface,
              `mesh.fusion`, instead; then simplified, by error with "auto faces", `mesh.decimate`)
    texture:  mesh --texture refinement (fixed geometry)--> refined colour field
              --unwrap--> UV layout --bake (input views' colours where they see the surface)--> textured mesh
    LODs:     each further level simplified to a quarter of the faces of the one before, unwrapped and baked

`geometry_stage` and `texture_stage` are what `gtr eval` and `gtr bench` reuse (the server's refine reuses
`bake`, the texture stage's last step); each takes
a `Stages` that times them, reports progress (stage name, overall fraction in [0, 1]) and checks a cancel
callback between stages and steps, raising `CancelledError`. Stage times are measured with the device
synchronised. Everything is in the world frame (Y up, object in [-1, 1]^3).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from .contract import MAX_FIT_VIEWS, RECONSTRUCT_OPTIONS, FidelityFields, fidelity_problem
from .devices import out_of_memory, resolve_device, synchronize
from .errors import CancelledError, GTRError, OutOfMemoryError
from .export import bake_vertex_colors, unwrap, write_mesh
from .export.bake import bake_textures
from .export.normal_map import bake_normal_map
from .fidelity import Fidelity, fidelity
from .mesh import DENSITY_LEVEL, Mesh, sdf_to_mesh, simplify
from .mesh.clean import CleanOptions, clean_surface, membrane_share
from .mesh.decimate import AUTO_FACE_ERROR, DecimateOptions, decimate, filtered_planes, simplify_by_error
from .mesh.extract import McBackend, density_grid
from .mesh.fit import CarveOptions, FitOptions, carve_and_fill, fit_surface
from .mesh.fusion import fuse_depth
from .model import GTR, Precision
from .model.fields import TriplaneField, sample_triplane
from .refine import ColorField, RefineOptions, RefineResult, refine_texture
from .refine.projection import ProjectionOptions, ViewColors
from .refine.texture import RefineParams
from .render.raster import RasterBackend, Rasterizer, get_rasterizer
from .views import ViewSet, model_inputs
from .views.selection import network_views, spread_views
from .weights import load_model

ProgressFn = Callable[[str, float], None]
CancelFn = Callable[[], bool]

# Share of the whole run each stage is shown as taking, for one progress bar.
STAGE_SHARE = {
    "triplane": 0.05,
    "depth fusion": 0.15,
    "density grid": 0.1,
    "carve": 0.1,
    "marching cubes": 0.05,
    "simplify": 0.05,
    "geometry fit": 0.15,
    "clean": 0.02,
    "refine": 0.25,
    "unwrap": 0.15,
    "bake": 0.1,
    "normal map": 0.05,
    "levels of detail": 0.1,
    "score": 0.03,
}
MIN_LOD_FACES = 12  # a level of detail is never simplified below this (a box's 12 triangles)
TEXTURE_VIEW_SIZE = 1024  # input views are used for the texture at up to this size (longest side)


def _default(name: str) -> Any:
    return RECONSTRUCT_OPTIONS[name].default


@dataclass(frozen=True)
class ReconstructOptions:
    """How a reconstruction runs. The options users set (CLI, server, add-on) are defined once, with their
    defaults, ranges and help, in `contract.RECONSTRUCT_OPTIONS`; the rest are for the API and the tests."""

    mesh_resolution: int | None = _default("mesh_resolution")  # None: 256 on CUDA, 128 on the CPU
    geometry_refine: bool = _default("geometry_refine")  # reconcile the network's shape with the masks
    geometry_steps: int = _default("geometry_steps")  # steps of the surface fit after carving (0: off)
    texture_from_views: bool = _default("texture_from_views")  # texel colours from the input views
    texture_views: str = _default("texture_views")  # "auto", "blend" or "best" (one view per face, `refine.labelling`)
    refine_steps: int = _default("refine_steps")
    refine_params: RefineParams = "both"
    texture_size: int = _default("texture_size")
    target_faces: int = _default("target_faces")  # simplify to about this many faces; 0 keeps every face
    auto_faces: bool = _default("auto_faces")  # simplify by error (`AUTO_FACE_ERROR`), `target_faces` the cap
    lods: int = _default("lods")  # levels of detail, each about a quarter of the faces of the one before
    uv: str = _default("uv")  # UV atlas: "fast" (projected charts) or "xatlas" (tightest packing, slower)
    normal_map: bool = _default("normal_map")  # the full-resolution surface's normals as a normal map
    vertex_colors: bool = _default("vertex_colors")  # colour per vertex instead of a UV texture
    precision: Precision = "auto"
    rasterizer: RasterBackend = "auto"
    marching_cubes: McBackend = "auto"

    def __post_init__(self) -> None:
        for name, option in RECONSTRUCT_OPTIONS.items():
            value, words = getattr(self, name), name.replace("_", " ")
            if option.choices and value not in option.choices:
                raise GTRError(f"unknown {words} {value!r}; use one of {', '.join(option.choices)}")
            if option.low is not None and value is not None and not option.low <= value <= (option.high or value):
                raise GTRError(f"{words} must be between {option.low:g} and {option.high:g}, got {value}")

    def resolution(self, device: torch.device) -> int:
        return self.mesh_resolution or (256 if device.type == "cuda" else 128)


@dataclass
class Reconstruction:
    mesh: Mesh  # on the CPU, textured (uv + texture) or with vertex colours
    triplane: Tensor  # (3, C, R, R), unrefined
    colors: ColorField  # the (refined) colour field the texture was baked from
    refinement: RefineResult | None
    device: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    fidelity: Fidelity | None = None  # the finished mesh against the views it was made from (and held-out ones):
    # its mask_iou_per_view is the final mesh's silhouette against each input view's mask
    notes: list[str] = field(default_factory=list)  # what the user should know about how the views were used
    lods: list[Mesh] = field(default_factory=list)  # levels of detail after `mesh` (LOD1, ...), each textured
    problem: str | None = None  # how the result fails its views, in one line (`contract.fidelity_problem`)

    def save(self, path: Path | str, texture_format: str = "png") -> list[Path]:
        """Write the mesh (.glb, .obj or .ply; a GLB's texture as "png" or "jpeg"; a GLB holds the levels of
        detail too, as nodes NAME_LOD0, NAME_LOD1, ... after the file's name); adds the time it took to
        `timings["export"]`."""
        start = time.perf_counter()
        written = write_mesh(self.mesh, path, texture_format, lods=self.lods)
        self.timings["export"] = time.perf_counter() - start
        return written


class Stages:
    """Times stages, reports progress and honours cancellation. `plan`: the stages that will run, so that their
    shares of the progress bar add up to the whole (default: every stage of `STAGE_SHARE`)."""

    def __init__(
        self,
        device: torch.device,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        plan: tuple[str, ...] | None = None,
    ) -> None:
        self.device, self.progress, self.cancel = device, progress, cancel
        self.timings: dict[str, float] = {}
        self.options: ReconstructOptions | None = None  # what the run uses: lower settings are offered on OOM
        self.done = 0.0
        total = sum(STAGE_SHARE.get(name, 0.0) for name in plan or STAGE_SHARE)
        self.shares = {name: STAGE_SHARE.get(name, 0.0) / total for name in plan or STAGE_SHARE}

    @classmethod
    def planned(
        cls,
        device: torch.device,
        options: ReconstructOptions,
        progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        network: bool = True,
        depth: bool = False,
    ) -> Stages:
        """Stages for a run with `options` (and the network first, if `network`; the depth maps fused, if
        `depth`: views that all know their depth)."""
        plan = ["triplane"] if network else []
        fused = depth and options.geometry_refine  # (`fuses_depth`)
        if fused:
            plan += ["depth fusion"]
        else:
            plan += ["carve"] if options.geometry_refine else ["density grid", "marching cubes"]
        plan += ["simplify"] if options.target_faces or options.auto_faces else []
        if not fused:
            plan += ["geometry fit"] if options.geometry_refine and options.geometry_steps else []
            plan += ["clean"] if options.geometry_refine else []
        plan += ["refine"] if options.refine_steps and not fused else []
        plan += ["bake"] if options.vertex_colors else ["unwrap", "bake"]
        plan += ["normal map"] if options.normal_map and not options.vertex_colors and not fused else []
        plan += ["levels of detail"] if options.lods > 1 and not options.vertex_colors else []
        stages = cls(device, progress, cancel, (*plan, "score"))
        stages.options = options
        return stages

    def check(self) -> None:
        if self.cancel and self.cancel():
            raise CancelledError("reconstruction cancelled")

    def report(self, stage: str, within: float) -> None:
        self.check()
        if self.progress:
            self.progress(stage, min(1.0, self.done + self.shares.get(stage, 0.0) * within))

    def reporter(self, stage: str) -> Callable[[float], None]:
        """A callback for a stage's own steps: fraction of the stage done -> progress (and a cancel check)."""
        return lambda fraction: self.report(stage, fraction)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.report(name, 0.0)
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
            if not out_of_memory(error):
                raise
            # Settings that shape the mesh and texture do not change what the network needs: only the CPU helps.
            lower = {} if name == "triplane" else lower_settings(self.options or ReconstructOptions(), self.device)
            words = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in lower.items())
            retry = f"try again with {words}, close other programs" if lower else "close other programs"
            raise OutOfMemoryError(
                f"out of GPU memory during '{name}': {retry} using the GPU, or use the CPU", lower
            ) from None
        synchronize(self.device)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        self.done += self.shares.get(name, 0.0)
        self.report(name, 0.0)

    def finish(self) -> None:
        if self.progress:
            self.progress("done", 1.0)


def lower_settings(options: ReconstructOptions, device: torch.device) -> dict[str, object]:
    """Settings (option name -> value) that need less memory than `options`, for a retry after running out of
    memory: three quarters of the marching-cubes grid points per side (a multiple of 8, at least 32), half the
    texture size (at least 256) and at most 20k faces (half as many if there were fewer, at least 1000). Only
    what actually goes down is named; {} when nothing can."""
    resolution = options.resolution(device)
    lower: dict[str, object] = {}
    if resolution > 32:
        lower["mesh_resolution"] = max(32, resolution * 3 // 4 // 8 * 8)
    if options.texture_size > 256 and not options.vertex_colors:
        lower["texture_size"] = max(256, options.texture_size // 2)
    if not options.target_faces or options.target_faces > 20000:
        lower["target_faces"] = 20000
    elif options.target_faces > 1000:
        lower["target_faces"] = max(1000, options.target_faces // 2)
    return lower


def prepare_inputs(model: GTR, views: ViewSet) -> Tensor:
    """The network stage's inputs: views (any size, world frame) resized to the model's resolution ->
    (1, V, 10, S, S) on the model's device (rgb, mask, Plücker rays); checks the number of views."""
    device = next(model.parameters()).device
    inputs = model_inputs(views.to(device).resized(model.config.image_size))[None]
    model.check_inputs(inputs)
    return inputs


@torch.no_grad()
def predict_triplane(model: GTR, views: ViewSet, precision: Precision = "auto") -> Tensor:
    """The network stage, the feed-forward half of GTR: a view set -> its triplane (3, C, R, R) (float32, on the
    model's device)."""
    return model.triplane(prepare_inputs(model, views), precision)[0]


def texture_views(views: ViewSet, limit: int = TEXTURE_VIEW_SIZE) -> ViewSet:
    """The views the texture is taken from: as given, or scaled down so the longest side is `limit`."""
    longest = max(views.height, views.width)
    if longest <= limit:
        return views
    return views.resized((round(views.height * limit / longest), round(views.width * limit / longest)))


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
    views, notes = views.checked_depth()  # a depth map that cannot be right is dropped, and said so
    stages = Stages.planned(target, options, progress, cancel, depth=views.depth is not None)
    if isinstance(weights, GTR):
        model = weights.to(target)
    else:
        with stages.stage("load weights"):
            model = load_model(weights, target)
    model.eval()
    fit, held_out = views.to(target).split_held_out()
    chosen = spread_views(fit.c2w)
    if len(chosen) < fit.num_views:
        notes.append(
            f"{fit.num_views} views given: the shape and texture use {len(chosen)} of them, the most spread "
            f"around the object (at most {MAX_FIT_VIEWS})"
        )
        fit = fit.select(chosen)
    if fuses_depth(fit, options) and options.normal_map and not options.vertex_colors:
        notes.append(
            "no normal map: the views know their depth, so the mesh itself follows the captured surface (its "
            "creases sharp), and a normal map would only add the fused field's noise"
        )
    size = model.config.image_size
    with stages.stage("triplane"):  # the network sees the views closest to the orbit it was trained on
        triplane = predict_triplane(model, fit.select(network_views(fit.c2w)).resized(size), options.precision)
    result = reconstruct_from_triplane(
        model.field, triplane, fit.resized(size), options, stages=stages, originals=fit, held_out=held_out
    )
    result.notes[:0] = notes
    return result


def reconstruct_from_triplane(
    field: TriplaneField,
    triplane: Tensor,
    views: ViewSet,
    options: ReconstructOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    stages: Stages | None = None,
    originals: ViewSet | None = None,
    held_out: ViewSet | None = None,
) -> Reconstruction:
    """The stages after the network: triplane (3, C, R, R) and its field -> textured mesh fitted to `views`
    (moved to the triplane's device; pass them at the resolution the fits should use, e.g. the model's).
    `originals`: the same views at their own resolution, for the texture (default: `views`); `held_out`: views
    kept out of everything, scored only (`fidelity`). A caller that passes its own `stages` (timings, progress
    and cancel shared with earlier stages) passes no `progress` or `cancel` here."""
    options = options or ReconstructOptions()
    depth = views.depth is not None
    stages = stages or Stages.planned(triplane.device, options, progress, cancel, network=False, depth=depth)
    views = views.to(triplane.device)
    originals = (originals or views).to(triplane.device)
    rasterizer = get_rasterizer(triplane.device, options.rasterizer)
    shape = geometry_stage(field, triplane, views, options, stages, rasterizer, originals)
    sources = texture_views(originals) if options.texture_from_views else None
    textured, colors, refinement = texture_stage(
        field, triplane, shape.mesh, views, sources, options, stages, rasterizer, shape.inside
    )
    lods = levels_of_detail(shape.mesh, colors, sources, options, stages, rasterizer, fuses_depth(views, options))
    with stages.stage("score"), torch.no_grad():
        unseen = None if held_out is None else held_out.to(triplane.device).resized((views.height, views.width))
        score = fidelity(textured, views, rasterizer, unseen)
    stages.finish()
    return Reconstruction(
        textured.to("cpu"),
        triplane,
        colors,
        refinement,
        str(triplane.device),
        stages.timings,
        score,
        lods=[lod.to("cpu") for lod in lods],
        problem=fidelity_problem(cast(FidelityFields, score.as_dict()), views.names, views.depth is not None),
    )


@dataclass(frozen=True)
class Shape:
    """What the geometry stage makes: the mesh, and the field it was meshed from at full resolution."""

    mesh: Mesh
    inside: Tensor | None  # (R, R, R) on `mesh.extract.grid_points`, positive inside; its zero level set is the
    # surface (None where the normal map does not need it)


def fuses_depth(views: ViewSet, options: ReconstructOptions) -> bool:
    """Whether the shape comes from the views' depth maps fused (views that know their depth, a capture's)."""
    return views.depth is not None and options.geometry_refine


def views_meet(texture_views: str, exact_shape: bool) -> str:
    """The `texture_views` option made definite: "auto" is "best" where the shape is exact (fused from the views'
    own depth: each face can take its one best view without ghosting), else "blend"."""
    if texture_views == "auto":
        return "best" if exact_shape else "blend"
    return texture_views


def simplify_stage(mesh: Mesh, options: ReconstructOptions, stages: Stages) -> Mesh:
    """The mesh simplified: with `auto_faces` as far as the shape allows (`simplify_by_error`; `target_faces`, if
    set, caps it), else to about `target_faces` (0 keeps every face)."""
    if options.auto_faces:
        with stages.stage("simplify"), torch.no_grad():
            return simplify_by_error(mesh, AUTO_FACE_ERROR, options.target_faces)
    if options.target_faces and mesh.num_faces > options.target_faces:
        with stages.stage("simplify"):
            return simplify(mesh, options.target_faces)
    return mesh


def geometry_stage(
    field: TriplaneField,
    triplane: Tensor,
    views: ViewSet,
    options: ReconstructOptions,
    stages: Stages,
    rasterizer: Rasterizer,
    originals: ViewSet | None = None,
) -> Shape:
    """Triplane -> mesh that agrees with the views (module docstring), simplified (`simplify_stage`), with the
    full-resolution field it was meshed from (for the normal map). Views that know their depth give the shape
    themselves: their depth maps (`originals`' at their own resolution, else `views`') are fused."""
    device = triplane.device
    resolution = options.resolution(device)
    if fuses_depth(views, options):
        sharp = (originals if originals is not None and originals.depth is not None else views).to(device)
        with stages.stage("depth fusion"), torch.no_grad():
            fused = fuse_depth(sharp, progress=stages.reporter("depth fusion"))
        # No field for a normal map: the mesh keeps the captured surface to a fraction of a pixel, and the
        # fused field's gradient, rounded at creases the mesh keeps sharp, would only shade bands along them.
        return Shape(simplify_stage(fused, options, stages), None)

    def density(points: Tensor) -> Tensor:
        return field.density(sample_triplane(triplane[None], points[None])[0])

    network_error = 0.0
    if options.geometry_refine:
        with stages.stage("carve"), torch.no_grad():
            carved = carve_and_fill(
                density,
                views,
                resolution,
                CarveOptions(),
                rasterizer,
                backend=options.marching_cubes,
                progress=stages.reporter("carve"),
            )
            mesh, inside, network_error = carved.mesh, carved.inside, carved.snap
    else:
        with stages.stage("density grid"), torch.no_grad():
            inside = density_grid(density, resolution, device) - DENSITY_LEVEL
        with stages.stage("marching cubes"):
            mesh = sdf_to_mesh(-inside, options.marching_cubes)
    mesh = simplify_stage(mesh, options, stages)
    if options.geometry_refine and options.geometry_steps > 0:
        with stages.stage("geometry fit"):
            fit = FitOptions(steps=options.geometry_steps, voxel=2.0 / (resolution - 1))
            mesh = fit_surface(mesh, views, fit, rasterizer, progress=stages.reporter("geometry fit"))
    if options.geometry_refine:
        with stages.stage("clean"), torch.no_grad():
            mesh = clean_surface(mesh, views, CleanOptions(membrane=membrane_share(network_error)), rasterizer)
    return Shape(mesh, inside)


def texture_stage(
    field: TriplaneField,
    triplane: Tensor,
    mesh: Mesh,
    views: ViewSet,
    sources: ViewSet | None,
    options: ReconstructOptions,
    stages: Stages,
    rasterizer: Rasterizer,
    inside: Tensor | None = None,
) -> tuple[Mesh, ColorField, RefineResult | None]:
    """Fixed mesh -> (textured mesh, the colour field it was baked from, the refinement's record).

    `views` are what the refinement fits (the model's resolution); `sources` (or None) the views whose own
    colours are laid over the field where they see the surface; `inside` (R, R, R), the full-resolution
    field the mesh was simplified from, for the normal map (`options.normal_map`)."""
    refinement = None
    colors = ColorField(triplane, field)
    # Views that know their depth see the whole surface the shape was fused from: the colour field would only
    # shape the fill where none of them looks, so it is kept unrefined (Refine Texture can still refine it).
    if options.refine_steps > 0 and not fuses_depth(views, options):
        with stages.stage("refine"):
            refine_options = RefineOptions(steps=options.refine_steps, params=options.refine_params)
            # The colour field is fitted to the network's own views (as in the paper): with many views the views'
            # colours cover the surface anyway, and the cost stays that of four views.
            network = views.select(network_views(views.c2w))
            refinement = refine_texture(
                field, triplane, mesh, network, refine_options, rasterizer, progress=stages.reporter("refine")
            )
            colors = refinement.colors
    if options.vertex_colors:
        with stages.stage("bake"):
            projected = ViewColors(mesh, sources, rasterizer) if sources is not None else None
            return bake_vertex_colors(mesh, colors, projected), colors, refinement
    how = views_meet(options.texture_views, fuses_depth(views, options))
    with stages.stage("unwrap"):
        unwrapped = unwrap(mesh, options.texture_size, options.uv)
    with stages.stage("bake"):
        textured = bake(unwrapped, colors, sources, options.texture_size, rasterizer, texture_views=how)
    if options.normal_map and inside is not None:
        with stages.stage("normal map"):
            normals = bake_normal_map(textured, inside, options.texture_size, rasterizer)
            textured = dataclasses.replace(textured, normal_texture=normals)
    return textured, colors, refinement


def levels_of_detail(
    mesh: Mesh,
    colors: ColorField,
    sources: ViewSet | None,
    options: ReconstructOptions,
    stages: Stages,
    rasterizer: Rasterizer,
    exact_shape: bool = False,
) -> list[Mesh]:
    """LOD1 ... LOD(n-1) of `options.lods` levels: each simplified (creases kept, `decimate`) to about a quarter
    of the faces of the one before, unwrapped and baked on its own; [] for one level or vertex colours. A level
    that cannot get smaller (a few faces left) ends the chain. `exact_shape`: the mesh was fused from the views'
    depth (`views_meet`)."""
    if options.lods <= 1 or options.vertex_colors:
        return []
    how = views_meet(options.texture_views, exact_shape)
    levels: list[Mesh] = []
    with stages.stage("levels of detail"), torch.no_grad():
        previous = mesh
        for level in range(1, options.lods):
            stages.report("levels of detail", (level - 1) / (options.lods - 1))
            target = max(MIN_LOD_FACES, previous.num_faces // 4)
            smaller = decimate(previous, DecimateOptions(max_faces=target), planes=filtered_planes(previous))
            if smaller.num_faces > 0.9 * previous.num_faces:  # as simple as it gets: the chain ends here
                break
            size = max(64, options.texture_size >> level)  # a quarter of the faces: half the texels per side
            unwrapped = unwrap(smaller, size, options.uv)
            levels.append(bake(unwrapped, colors, sources, size, rasterizer, stages.check, False, how))
            previous = smaller
    return levels


def bake(
    mesh: Mesh,
    colors: ColorField,
    sources: ViewSet | None,
    size: int,
    rasterizer: Rasterizer,
    check: Callable[[], None] | None = None,
    close: bool = True,
    texture_views: str = "blend",
) -> Mesh:
    """A mesh with uv -> the same mesh with its texture baked from `colors` (and `sources`' own colours, and
    their material and emission where they carry them). `check` is called between the bake's steps (it raises
    to stop it); `close`: the mesh lies on the surface the sources' depth saw (`ViewColors`); `texture_views`:
    how the views' colours meet: "blend" or "best" (the option of that name, made definite by `views_meet`)."""
    if check is not None:
        check()
    how = ProjectionOptions(best_view=texture_views == "best")
    projected = ViewColors(mesh, sources, rasterizer, how, close) if sources is not None else None
    baked = bake_textures(mesh, colors, size, rasterizer, views=projected, check=check)
    return Mesh(
        mesh.vertices,
        mesh.faces,
        uv=mesh.uv,
        texture=baked.texture,
        material_texture=baked.material,
        emission_texture=baked.emission,
    )
