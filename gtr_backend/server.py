"""The backend as a long-lived process for the Blender add-on: `python -m gtr_backend.server`.

Protocol (version `PROTOCOL`, `gtr_backend.contract`): one JSON object per line. Requests on stdin carry an
`id` (an integer or a string), an `op` and optionally the `protocol` they speak (refused when it is not this
one); every request is checked field by field before any work (`contract.check_request`), and anything wrong
gets a one-line error naming the field. A request whose id is that of a request still running or queued is
refused: its error reply has a null `id`, so the first request's replies stay its own. Replies on stdout
carry the request's `id` and a `type`: any number of `progress` lines (`stage`, `fraction` in [0, 1]), then
exactly one `result` or `error` (`message`: plain words for the user).
Large data never goes through the pipe: views are read from a view folder and results are written to a job
folder, both named in the request; job folders must lie inside `--jobs-root` (the add-on's jobs folder) and
are written all or nothing (a new folder, manifest last, swapped in). Logging goes to stderr.

Requests:
- `hello` -> `protocol`, `version`, `torch`, `device` (GPU name or CPU), `cuda`, `weights` (the default file or null)
- `ping` -> answered at once even while a job runs (`busy`): the add-on's check that the backend is alive.
- `reconstruct` {`views`: {`path`, `orbit`: {azimuths, elevation, fov, distance} or null, `zero123pp`},
  `job`: folder, `weights`, `device`, `options`: {`refine_steps`, `texture_size`, `mesh_resolution`,
  `target_faces`, `uv`, `normal_map`, `vertex_colors`, `geometry_refine`, `geometry_steps`,
  `texture_from_views`} (each optional: `contract.RECONSTRUCT_OPTIONS`)}
  -> writes `mesh.glb`, `mesh.npz` (vertices (V, 3) float32 in the backend frame, faces (F, 3) int32,
  uv (V, 2) float32 or, with vertex colours, colors (V, 3)), `texture.png` (none with vertex colours),
  `state.safetensors` (the refined colour field) and `job.json` (the views, the options, the weights' name,
  the timings, the fidelity) into `job`; replies with the files, timings, the refinement's PSNR, the
  options, the `fidelity` (`gtr_backend.fidelity`: each input view's and the worst one's mask IoU, the PSNR
  inside the masks) and `warnings` (as for `cameras`). Out of memory, the error
  carries `retry_options`: lower settings to offer as a retry.
- `refine` {`job`, `steps` (at least 1)} -> continues the texture refinement of a finished job against its
  views (from the saved colour field, on the saved mesh and UV layout), bakes it as the reconstruction did
  (the views' own colours laid over the field, unless the job was made with `texture_from_views` off) and
  rewrites `texture.png` and the state; when the steps do not raise the input-view PSNR, nothing is
  rewritten and the reply says `improved: false`.
- `cameras` {`views` (as for `reconstruct`), `folder`: a new or empty folder inside the jobs folder} -> reads the
  views with the backend's loaders (any format: a cameras.json folder, the GTR release, an orbit, a Zero123++
  grid) and writes them into `folder` as a cameras.json view folder (RGBA PNGs as loaded, OpenCV camera-to-world
  in the backend frame); replies with its `path`, the views' `width` and `height`, their source `names`, the
  `views` entries of that cameras.json (image, fx, fy, cx, cy, matrix) and `warnings` (sentences: cameras that
  do not go around the object, `contract.camera_spread_warning`). The add-on builds its camera rig from it.
- `bake_to` {`job`: a finished job, `folder`: inside the jobs folder, holding `target.npz` (vertices (V, 3)
  float32 in the job's backend frame, faces (F, 3), uv (V, 2)), `texture_size`} -> the job's colours (its
  refined field under its views' own colours) baked onto that UV layout, written as `baked.png` in `folder`
  (Bake to Active).
- `unload` -> drops the loaded model and gives its memory back (`unloaded`: how many were loaded).
- `load` {`weights`, `device`} -> loads the model ahead of the first request (the add-on sends it when views
  are imported, so the first Reconstruct click does not wait for it); replies with `warm_up`, what the
  start-up warm-up measured (below), or null.
- `cancel` {`target`: the id (an integer or a string) of a running or queued request} -> that request stops at
  its next check and replies `error` with `cancelled: true` (a cancel for any other id is ignored).
- `shutdown`.
Warm-up: when the process starts (`--device`, `--weights`; `--no-warm-up` turns it off) a background thread
imports torch and the backend, loads the model and, on a GPU, runs every kind of kernel a reconstruction runs
once on tiny inputs (`warm_kernels`: the network, the field, marching cubes, the rasterizer with its gradients,
an optimizer step; on CUDA this loads nvdiffrast's plugin, building it on first use), so the handshake is
answered at once and the first request finds everything ready. A request that needs the model waits for the
warm-up (showing its stage as progress; a cancel stops the wait); a warm-up that fails is one line in the log,
and requests then load the model themselves. The model stays loaded between requests, so the second
reconstruction skips loading it; after every job the memory its tensors held is given back to the device. When
stdin closes the server finishes the running request and exits.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .contract import (
    BAKE_TARGET,
    BAKE_TEXTURE,
    JOB_ARRAYS,
    JOB_MANIFEST,
    JOB_MESH,
    JOB_NORMALS,
    JOB_STATE,
    JOB_TEXTURE,
    PROTOCOL,
    RECONSTRUCT_OPTIONS,
    check_request,
)

CONTINUE_TRIPLANE_LR = 0.05  # texture-refinement learning rates when refining a finished result further
CONTINUE_MLP_LR = 3e-5

Emit = Callable[[dict[str, Any]], None]


def _done_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start


def warm_kernels(model: Any, device: Any, say: Callable[[str], None] | None = None) -> dict[str, str]:
    """Run once, on tiny inputs, every kind of kernel a reconstruction runs on `device`: the network (4 views of
    a sphere at the model's size), the field, marching cubes, the rasterizer (nvdiffrast's plugin is loaded, or
    built, here; `say` hears how the build goes) with its gradients, and an optimizer step. Returns the
    rasterizer's and the marching cubes' names."""
    import torch

    from .devices import synchronize
    from .mesh.extract import diso_available, grid_points, sdf_to_mesh
    from .model.fields import sample_triplane
    from .reconstruction import predict_triplane
    from .render.raster import get_rasterizer, project
    from .views.sphere import sphere_views

    size = model.config.image_size
    views = sphere_views(size=size).to(device)
    triplane = predict_triplane(model, views)
    with torch.no_grad():
        model.field.density(sample_triplane(triplane[None], torch.rand(1, 256, 3, device=device) * 2 - 1)[0])
    points = grid_points(24, device)
    mesh = sdf_to_mesh(points.norm(dim=-1) - 0.6)
    rasterizer = get_rasterizer(device, say=say)
    vertices = mesh.vertices.float().clone().requires_grad_(True)
    clip = project(vertices, views.intrinsics[:1].float(), views.c2w[:1].float(), 32, 32)
    fragments = rasterizer.rasterize(clip, mesh.faces, 32, 32)
    covered = rasterizer.interpolate(torch.ones_like(vertices[:, :1]), fragments, mesh.faces)
    optimizer = torch.optim.Adam([vertices], lr=1e-3)
    rasterizer.antialias(covered, fragments, clip, mesh.faces).mean().backward()
    optimizer.step()
    synchronize(device)
    use_diso = device.type == "cuda" and diso_available()
    return {"rasterizer": rasterizer.name, "marching_cubes": "diso" if use_diso else "torch"}


@dataclass
class Session:
    """Handles requests; keeps loaded models between them (keyed by weights file and device). Job folders
    must lie inside `jobs_root` (None: anywhere; the add-on always gives its own jobs folder)."""

    jobs_root: Path | None = None
    models: dict[tuple[str, str], Any] = field(default_factory=dict)
    loads: int = 0  # how many times a model was read from disk
    warmed: threading.Event = field(default_factory=_done_event)  # set while no warm-up runs
    warm_stage: str = ""  # what the running warm-up does, shown to requests that wait for it
    warm_up_record: dict[str, Any] | None = None  # what the last warm-up measured (`warm_up`)

    def start_warm_up(self, weights: str | None, device: str, log: TextIO) -> threading.Thread:
        """`warm_up` in a background thread; requests that need the model wait for it (`ready`)."""
        self.warmed.clear()
        thread = threading.Thread(target=self.warm_up, args=(weights, device, log), name="warm-up", daemon=True)
        thread.start()
        return thread

    def warm_up(self, weights: str | None, device_name: str, log: TextIO) -> None:
        """Import torch and the backend, load the model and run its kernels once (`warm_kernels`), timing each
        step into `warm_up_record`; one line in `log` says how it went."""
        timings: dict[str, float] = {}
        try:
            self.warm_stage = "warming up: starting PyTorch"
            with _timed(timings, "import torch"):
                import torch
            with _timed(timings, "import backend"):
                from . import devices, reconstruction  # noqa: F401 (imported here to time it)

                torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo
            device = devices.resolve_device(device_name)
            if device.type == "cuda":
                with _timed(timings, "start CUDA"):
                    torch.zeros(1, device=device)
                    devices.synchronize(device)
            self.warm_stage = "warming up: loading the model"
            model = self.model(weights, device, timings)
            kernels = {}
            if device.type != "cpu":  # on the CPU a first kernel costs little more than a later one
                self.warm_stage = "warming up: running the kernels once"
                with _timed(timings, "warm kernels"):
                    kernels = warm_kernels(model, device, self._warm_say(log))
                devices.release_device_memory(device)  # what the tiny inputs held; the model stays
            self.warm_up_record = {"device": str(device), "seconds": timings, **kernels}
            steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
            log.write(f"warm-up on {device}: {steps}\n")
        except Exception as error:  # the first request loads the model itself and reports what is wrong
            message = (str(error).splitlines() or [repr(error)])[0]
            after = "the model is loaded" if self.models else "requests load the model themselves"
            log.write(f"warm-up failed ({type(error).__name__}: {message}); {after}\n")
        finally:
            log.flush()
            self.warm_stage = ""
            self.warmed.set()

    def _warm_say(self, log: TextIO) -> Callable[[str], None]:
        """Where the warm-up's rasterizer build says how it goes: the log and the waiting requests' stage."""

        def say(message: str) -> None:
            self.warm_stage = f"warming up: {message}"
            log.write(f"{message}\n")
            log.flush()

        return say

    def ready(self, emit: Emit, cancelled: Callable[[], bool]) -> None:
        """Wait for a running warm-up (its stage shown as progress); a cancel ends the wait."""
        from .errors import CancelledError

        shown = None
        while not self.warmed.wait(0.1):
            if cancelled():
                raise CancelledError("cancelled while the backend was warming up")
            if self.warm_stage and self.warm_stage != shown:
                shown = self.warm_stage
                emit({"type": "progress", "stage": shown, "fraction": 0.0})

    def job_folder(self, path: str) -> Path:
        """The job folder of a request, resolved, and confined to `jobs_root`."""
        from .errors import GTRError

        folder = Path(path).expanduser().resolve()
        if self.jobs_root is not None:
            root = self.jobs_root.expanduser().resolve()
            if folder == root or root not in folder.parents:
                raise GTRError(f"the job folder {path} is not inside the jobs folder {root}; choose a folder there")
        if folder.exists() and not folder.is_dir():
            raise GTRError(f"the job folder {path} is a file, not a folder")
        return folder

    def handle(self, request: dict[str, Any], emit: Emit, cancelled: Callable[[], bool]) -> dict[str, Any]:
        op = check_request(request)["op"]
        if op == "hello":
            return self.hello()
        if op == "reconstruct":
            return self.reconstruct(request, emit, cancelled)
        if op == "refine":
            return self.refine(request, emit, cancelled)
        if op == "cameras":
            return self.cameras(request)
        if op == "bake_to":
            return self.bake_to(request, emit, cancelled)
        if op == "unload":
            self.ready(emit, cancelled)
            return self.unload()
        if op == "load":
            from .devices import resolve_device

            device = resolve_device(request.get("device") or "auto")
            self.ready(emit, cancelled)
            loads = self.loads
            self.model(request.get("weights"), device)
            return {"device": str(device), "loaded_model": self.loads > loads, "warm_up": self.warm_up_record}
        from .errors import GTRError

        raise GTRError(f"the request {op!r} is answered by the server's reader, not by a session")

    def hello(self) -> dict[str, Any]:
        import torch

        from . import __version__
        from .devices import display_name
        from .weights import find_default_weights

        cuda = torch.cuda.is_available()
        weights = find_default_weights()
        return {
            "protocol": PROTOCOL,
            "version": __version__,
            "torch": torch.__version__,
            "cuda": cuda,
            "device": display_name(),
            "weights": str(weights) if weights else None,
        }

    def model(self, weights: str | None, device: Any, timings: dict[str, float] | None = None) -> Any:
        """The model of `weights` (None: the bundled ones) on `device`, loaded once and kept; `timings` receives
        the loading's steps (`weights.load_model`)."""
        from .errors import WeightsError
        from .weights import find_default_weights, load_model

        path = Path(weights) if weights else find_default_weights()
        if path is None:
            raise WeightsError("no weights file set and none bundled: choose one in the add-on's preferences")
        key = (str(path.resolve()), str(device))
        if key not in self.models:
            self.models.clear()  # one model at a time: GPU memory is precious
            self.models[key] = load_model(path, device, timings=timings).eval()
            self.loads += 1
        return self.models[key]

    def reconstruct(self, request: dict[str, Any], emit: Emit, cancelled: Callable[[], bool]) -> dict[str, Any]:
        from .devices import resolve_device
        from .reconstruction import reconstruct
        from .weights import find_default_weights

        job = self.job_folder(request["job"])
        _check_writable(job)
        views = _load_view_spec(request["views"])
        device = resolve_device(request.get("device") or "auto")
        self.ready(emit, cancelled)
        emit({"type": "progress", "stage": "load weights", "fraction": 0.0})
        loads = self.loads
        model = self.model(request.get("weights"), device)
        options = request_options(request.get("options") or {})

        def progress(stage: str, fraction: float) -> None:
            emit({"type": "progress", "stage": stage, "fraction": fraction})

        result = reconstruct(views, model, device, options, progress, cancelled)
        assert result.fidelity is not None
        info = {
            "views": request["views"],
            "weights": request.get("weights"),
            "weights_name": Path(request.get("weights") or find_default_weights() or "").name,
            "device": str(device),
            "texture_from_views": options.texture_from_views,
            "options": {name: getattr(options, name) for name in RECONSTRUCT_OPTIONS},
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "fidelity": result.fidelity.as_dict(),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        files = _write_job(job, result.mesh, result.colors, info)
        refinement = result.refinement
        return {
            "files": files,
            "faces": result.mesh.num_faces,
            "loaded_model": self.loads > loads,  # False: the model was still loaded from an earlier request
            "timings": info["timings"],
            "psnr_before": refinement.psnr_before if refinement else None,
            "psnr_after": refinement.psnr_after if refinement else None,
            "fidelity": info["fidelity"],
            "options": info["options"],
            "weights_name": info["weights_name"],
            "warnings": _warnings(views) + result.notes,
        }

    def unload(self) -> dict[str, Any]:
        """Drop the loaded model and give its memory back to the device."""
        unloaded = len(self.models)
        self.models.clear()
        from .devices import release_all

        release_all()
        return {"unloaded": unloaded}

    def cameras(self, request: dict[str, Any]) -> dict[str, Any]:
        """The views of `request["views"]` written as a cameras.json folder into `request["folder"]` (see the
        module docstring); the folder must be new or empty, inside the jobs folder."""
        from .errors import GTRError
        from .views import save_views

        folder = self.job_folder(request["folder"])
        if folder.is_dir() and any(folder.iterdir()):
            raise GTRError(f"the folder {folder} for the views is not empty; give a new or empty folder")
        views = _load_view_spec(request["views"])
        path = save_views(views, folder)
        entries = json.loads(path.read_text())["views"]
        size = {"width": views.width, "height": views.height}
        return {"path": str(path), **size, "names": list(views.names), "views": entries, "warnings": _warnings(views)}

    def open_job(self, job: Path, emit: Emit, cancelled: Callable[[], bool] = lambda: False) -> FinishedJob:
        """A finished job's manifest, model, views, mesh and refined colour field, on the job's device."""
        import numpy as np
        import torch
        from safetensors.torch import load_file

        from .devices import resolve_device
        from .errors import GTRError
        from .mesh import Mesh

        if not (job / JOB_MANIFEST).is_file() or not (job / JOB_STATE).is_file():
            raise GTRError(f"{job}: not a finished reconstruction (job.json or state.safetensors is missing)")
        info = json.loads((job / JOB_MANIFEST).read_text())
        device = resolve_device(info.get("device", "auto"))
        self.ready(emit, cancelled)
        emit({"type": "progress", "stage": "load weights", "fraction": 0.0})
        model = self.model(info.get("weights"), device)
        originals, held_out = _load_view_spec(info["views"]).to(device).split_held_out()
        with np.load(job / JOB_ARRAYS, allow_pickle=False) as data:
            arrays = {k: torch.from_numpy(data[k]).float() for k in data.files if k in ("uv", "colors")}
            mesh = Mesh(
                torch.from_numpy(data["vertices"]).float(),
                torch.from_numpy(data["faces"]).long(),
                uv=arrays.get("uv"),
                vertex_colors=arrays.get("colors"),
            ).to(device)
        state = load_file(str(job / JOB_STATE), device=str(device))
        color_field = copy.deepcopy(model.field)
        color_field.load_state_dict({k[len("field.") :]: v for k, v in state.items() if k.startswith("field.")})
        views = originals.resized(model.config.image_size)
        held_out = None if held_out is None else held_out.resized(model.config.image_size)
        return FinishedJob(info, device, originals, views, mesh, color_field, state, held_out)

    def refine(self, request: dict[str, Any], emit: Emit, cancelled: Callable[[], bool]) -> dict[str, Any]:
        from .errors import CancelledError
        from .export import bake_vertex_colors
        from .fidelity import fidelity
        from .reconstruction import bake
        from .refine import RefineOptions, refine_texture
        from .refine.projection import ViewColors
        from .render.raster import get_rasterizer
        from .views.selection import network_views

        job = self.job_folder(request["job"])
        done = self.open_job(job, emit, cancelled)
        steps = int(request.get("steps", 20))

        def check() -> None:
            if cancelled():
                raise CancelledError("refinement cancelled")

        def progress(fraction: float) -> None:
            check()
            emit({"type": "progress", "stage": "refine", "fraction": 0.9 * fraction})

        rasterizer = get_rasterizer(done.device)
        # A continuation fine-tunes a colour field that has already converged once: gentler steps than the
        # first refinement (whose cosine schedule ended at zero), so more steps never undo what it reached.
        options = RefineOptions(steps=steps, triplane_lr=CONTINUE_TRIPLANE_LR, mlp_lr=CONTINUE_MLP_LR)
        triplane = done.state["triplane"]
        network = done.views.select(network_views(done.views.c2w))  # as the reconstruction refined it
        result = refine_texture(done.field, triplane, done.mesh, network, options, rasterizer, progress)
        if result.psnr_after <= result.psnr_before:  # no better: keep the texture and state as they are
            return {"files": {}, "psnr_before": result.psnr_before, "psnr_after": result.psnr_before, "improved": False}
        emit({"type": "progress", "stage": "bake", "fraction": 0.9})
        # The same colour path as the first reconstruction: the refined field, under the views' own colours.
        # Jobs made before the views' colours were baked in (no such key) keep their texture as it was made.
        sources = done.sources()
        if done.mesh.uv is None:
            projected = ViewColors(done.mesh, sources, rasterizer) if sources is not None else None
            coloured = bake_vertex_colors(done.mesh, result.colors, projected)
        else:
            coloured = bake(done.mesh, result.colors, sources, done.texture_size(job), rasterizer, check)
        info = {**done.info, "fidelity": fidelity(coloured, done.views, rasterizer, done.held_out).as_dict()}
        files = _write_job(job, coloured.to("cpu"), result.colors, info, mesh_files=done.mesh.uv is None)
        return {
            "files": files,
            "psnr_before": result.psnr_before,
            "psnr_after": result.psnr_after,
            "improved": True,
            "fidelity": info["fidelity"],
        }

    def bake_to(self, request: dict[str, Any], emit: Emit, cancelled: Callable[[], bool]) -> dict[str, Any]:
        """A finished job's colours (its refined field under its views' own colours) baked onto the UV layout of
        the mesh in `folder`/BAKE_TARGET (the job's backend frame), written as `folder`/BAKE_TEXTURE."""
        from PIL import Image

        from .errors import CancelledError, GTRError
        from .files import atomic_write
        from .pixels import to_uint8
        from .reconstruction import bake
        from .refine import ColorField
        from .render.raster import get_rasterizer

        job, folder = self.job_folder(request["job"]), self.job_folder(request["folder"])
        size, largest = int(request.get("texture_size", 1024)), int(RECONSTRUCT_OPTIONS["texture_size"].high or 0)
        if size > largest:
            raise GTRError(f"the texture size {size} is larger than {largest}; choose {largest} or less")
        target = _read_bake_target(folder / BAKE_TARGET)
        done = self.open_job(job, emit, cancelled)

        def check() -> None:
            if cancelled():
                raise CancelledError("bake cancelled")

        check()
        emit({"type": "progress", "stage": "bake", "fraction": 0.3})
        colors = ColorField(done.state["triplane"], done.field)
        baked = bake(target.to(done.device), colors, done.sources(), size, get_rasterizer(done.device), check)
        assert baked.texture is not None
        image = Image.fromarray(to_uint8(baked.texture).cpu().numpy())
        path = atomic_write(folder / BAKE_TEXTURE, lambda tmp: image.save(tmp, format="PNG"))
        return {"files": {"texture": str(path)}, "faces": target.num_faces, "texture_size": size}


@dataclass
class FinishedJob:
    """What a finished job folder holds, loaded for more work (Refine Texture, Bake to Active)."""

    info: dict[str, Any]  # its manifest (job.json)
    device: Any  # torch.device it was made on
    originals: Any  # ViewSet: the views it was made from, at their own resolution
    views: Any  # ViewSet: the same at the model's resolution
    mesh: Any  # Mesh, backend frame, with uv or vertex colours
    field: Any  # the refined colour field's network (a copy of the model's)
    state: dict[str, Any]  # the saved tensors ("triplane", "field.*")
    held_out: Any = None  # ViewSet of its held-out views at the model's resolution, or None

    def sources(self) -> Any:
        """The views whose own colours go into a bake (None when the job was made without them)."""
        from .reconstruction import texture_views

        return texture_views(self.originals) if self.info.get("texture_from_views", False) else None

    def texture_size(self, job: Path) -> int:
        from PIL import Image

        return int(Image.open(job / JOB_TEXTURE).size[0])


def _read_bake_target(path: Path) -> Any:
    """The mesh Bake to Active bakes onto: vertices (V, 3) and uv (V, 2) of real numbers, faces (F, 3) of
    integers (vertex indices), from an .npz (no pickles); a `GTRError` saying what is wrong otherwise."""
    import numpy as np
    import torch

    from .errors import GTRError
    from .mesh import Mesh

    try:
        with np.load(path, allow_pickle=False) as data:
            vertices, faces, uv = (np.asarray(data[k]) for k in ("vertices", "faces", "uv"))
    except (OSError, ValueError, KeyError) as error:
        raise GTRError(f"{path.name}: not a mesh to bake onto ({error}); run Bake to Active again") from None
    v = vertices.shape[0] if vertices.ndim else -1  # a 0-d array has no length: a wrong shape
    if vertices.shape != (v, 3) or uv.shape != (v, 2) or faces.ndim != 2 or faces.shape[1:] != (3,) or not len(faces):
        raise GTRError(f"{path.name}: needs vertices (V, 3), uv (V, 2) and faces (F, 3); got other shapes")
    for name, array, allowed in (("faces", faces, "iu"), ("vertices", vertices, "iuf"), ("uv", uv, "iuf")):
        if array.dtype.kind not in allowed:
            numbers = "integers (vertex indices)" if allowed == "iu" else "real numbers"
            raise GTRError(f"{path.name}: its {name} are {array.dtype} values, not {numbers}; run Bake to Active again")
    if faces.min() < 0 or faces.max() >= v or not (np.isfinite(vertices).all() and np.isfinite(uv).all()):
        raise GTRError(f"{path.name}: faces name missing vertices or coordinates are not finite")
    return Mesh(
        torch.from_numpy(vertices.astype(np.float32)),
        torch.from_numpy(faces.astype(np.int64)),
        uv=torch.from_numpy(uv.astype(np.float32)),
    )


def request_options(raw: dict[str, Any]) -> Any:
    """A request's `options` object -> `ReconstructOptions`: what it names, the definitions' defaults for the
    rest (an add-on's 0 for `mesh_resolution` means "by the device", as None does)."""
    from .reconstruction import ReconstructOptions

    values: dict[str, Any] = {}
    for name, option in RECONSTRUCT_OPTIONS.items():
        value = raw.get(name, option.default)
        if isinstance(option.default, bool):
            value = _flag(raw, name, option.default)
        elif name == "mesh_resolution":
            value = value or None
        values[name] = value
    return ReconstructOptions(**values)


def _flag(options: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false option of a request: JSON true or false (absent: the default)."""
    from .errors import GTRError

    value = options.get(name, default)
    if not isinstance(value, bool):
        raise GTRError(f"the option {name} must be true or false, got {value!r}")
    return value


def _orbit(fields: dict[str, Any]) -> Any:
    """A request's orbit object as an `Orbit`; a field left out keeps the contract's default."""
    from .views import Orbit

    names = {"azimuths": "azimuths_deg", "elevation": "elevation_deg", "fov": "fov_deg", "distance": "distance"}
    given = {names[key]: value for key, value in fields.items() if value is not None}
    if "azimuths_deg" in given:
        given["azimuths_deg"] = tuple(given["azimuths_deg"])
    return Orbit(**given)


def _load_view_spec(spec: dict[str, Any]) -> Any:
    from .views import load_views

    orbit = spec.get("orbit")
    return load_views(
        Path(spec["path"]),
        orbit=_orbit(orbit) if orbit else None,
        zero123pp=bool(spec.get("zero123pp")),
    )


def _warnings(views: Any) -> list[str]:
    """What a reply says about views that load but will not give a good result (sentences for the user)."""
    warning = views.camera_warning()
    return [warning] if warning else []


def _check_writable(job: Path) -> None:
    """Fail before any work when the job folder cannot be written (its parent is made if missing)."""
    import tempfile

    from .errors import GTRError

    try:
        job.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=job.parent):
            pass
    except OSError as error:
        raise GTRError(f"cannot write the job folder {job}: {error.strerror or error}") from None


def _write_job(job: Path, mesh: Any, colors: Any, info: dict[str, Any], mesh_files: bool = True) -> dict[str, str]:
    """Write a job folder all or nothing: everything goes into a new folder beside it, `job.json` (the
    manifest) last, and that folder then takes the job's place; everything else in the job folder (the mesh on
    a refine, views captured into it) is carried over. On any failure the job is left exactly as it was.
    Returns the paths written, by kind."""
    import shutil
    import tempfile

    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    from .export import write_mesh
    from .pixels import to_uint8

    job.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{job.name}-", dir=job.parent))
    try:
        rewritten = {JOB_TEXTURE, JOB_STATE, JOB_MANIFEST}
        if mesh_files:
            rewritten |= {JOB_MESH, JOB_ARRAYS, JOB_NORMALS}  # (a refine of a vertex-coloured job rewrites them too)
        if job.is_dir():  # whatever else lives there (the captured views, the mesh on a refine) is carried over
            for entry in job.iterdir():
                if entry.name in rewritten:
                    continue
                if entry.is_dir():
                    shutil.copytree(entry, staging / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, staging / entry.name, follow_symlinks=False)
        if mesh.texture is not None:
            Image.fromarray(to_uint8(mesh.texture).numpy()).save(staging / JOB_TEXTURE)
        if mesh.normal_texture is not None:
            Image.fromarray(to_uint8(mesh.normal_texture).numpy()).save(staging / JOB_NORMALS)
        state = {"triplane": colors.triplane.detach().float().contiguous().cpu()}
        state.update(
            {f"field.{k}": v.detach().float().contiguous().cpu() for k, v in colors.field.state_dict().items()}
        )
        save_file(state, str(staging / JOB_STATE))
        if mesh_files:
            colour = {"uv": mesh.uv} if mesh.uv is not None else {"colors": mesh.vertex_colors}
            np.savez(
                staging / JOB_ARRAYS,
                vertices=mesh.vertices.numpy().astype(np.float32),
                faces=mesh.faces.numpy().astype(np.int32),
                **{k: v.detach().numpy().astype(np.float32) for k, v in colour.items()},
            )
            write_mesh(mesh, staging / JOB_MESH)
        (staging / JOB_MANIFEST).write_text(json.dumps(info, indent=2) + "\n")
        _replace_folder(staging, job)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = {"state": str(job / JOB_STATE)}
    if mesh.texture is not None:
        files["texture"] = str(job / JOB_TEXTURE)
    if mesh_files:
        files.update({"npz": str(job / JOB_ARRAYS), "glb": str(job / JOB_MESH)})
    return files


def _replace_folder(new: Path, old: Path) -> None:
    """Put folder `new` in the place of `old` (which may not exist): the old one is moved aside first and
    removed only once the new one is in place, so a failure leaves one complete folder there."""
    import os
    import shutil

    aside = old.with_name(f".{old.name}-old-{os.getpid()}")
    if old.exists():
        os.replace(old, aside)
    try:
        os.replace(new, old)
    except OSError:
        if aside.exists():
            os.replace(aside, old)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def run_request(
    session: Session,
    request: dict[str, Any],
    send: Emit,
    cancelled: Callable[[], bool],
    log: TextIO,
) -> None:
    """Run one request and send its replies: progress, then one result (with `seconds`, the time it took) or one
    error (a plain message; `cancelled` true when it was cancelled). Every failure is written to `log` with its
    traceback. Used by `serve` (the backend process) and by the add-on's in-process backend alike, so both
    modes answer the same way."""
    from .errors import CancelledError, GTRError, OutOfMemoryError

    rid = request.get("id")
    start = time.perf_counter()

    def emit(message: dict[str, Any]) -> None:
        send({"id": rid, **message})

    def failed(message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"{stamp} request {rid} ({request.get('op')}) failed: {message}\n{traceback.format_exc()}\n")
        log.flush()

    try:
        payload = session.handle(request, emit, cancelled)
        send({"id": rid, "type": "result", "seconds": round(time.perf_counter() - start, 4), **payload})
    except CancelledError as error:
        send({"id": rid, "type": "error", "cancelled": True, "message": str(error)})
    except OutOfMemoryError as error:
        failed(str(error))
        send({"id": rid, "type": "error", "message": str(error), "retry_options": error.retry_options})
    except GTRError as error:
        failed(str(error))
        send({"id": rid, "type": "error", "message": str(error)})
    except Exception as error:  # a bug: the user gets one line, the log gets the traceback
        failed(repr(error))
        from .devices import out_of_memory

        if out_of_memory(error):  # outside a reconstruction's stages (loading the model, a bake, a refine)
            message = f"out of memory during '{request.get('op')}': close other programs using the GPU, use a smaller "
            send({"id": rid, "type": "error", "message": message + "texture size, or use the CPU"})
        else:
            send({"id": rid, "type": "error", "message": f"internal error in the backend: {error!r}"})
    if request.get("op") in ("reconstruct", "refine", "bake_to"):
        try:  # the reply is sent and the job's tensors are unreferenced: the model stays
            from .devices import release_all

            release_all()
        except Exception as error:  # a device in a bad state: the next request says so, this one is answered
            log.write(f"releasing the job's memory failed: {error!r}\n")


MAX_LINE = 1 << 20  # characters: a request is small; anything longer is refused, not parsed


def serve(
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    jobs_root: Path | None = None,
    warm_up: tuple[str | None, str] | None = None,
) -> int:
    """Answer requests from `stdin` until it closes or `shutdown`; one request runs at a time, while a reader
    thread keeps listening: it answers `ping` at once (the add-on's liveness check, also during a long job),
    takes `cancel` for the running or a queued request, and answers any line that is not a valid request with
    a one-line error, so no input can silence it. When stdin closes, the server exits after the running job.
    `warm_up` (weights or None, device): start the warm-up (module docstring) at once."""
    from .errors import GTRError

    lock = threading.Lock()
    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
    pending: set[Any] = set()  # ids queued or running: the only ones a cancel applies to
    cancelled_ids: set[Any] = set()
    running: list[Any] = [None]

    def send(message: dict[str, Any]) -> None:
        with lock:
            stdout.write(json.dumps(message) + "\n")
            stdout.flush()

    def reply(rid: Any, message: dict[str, Any]) -> None:
        """Send a running request's reply; before its last one (result or error) its id is free again, so a
        client may reuse it as soon as it has the answer."""
        if message.get("type") in ("result", "error"):
            with lock:
                pending.discard(rid)
                cancelled_ids.discard(rid)
        send(message)

    def take(line: str) -> None:
        if len(line) > MAX_LINE:
            raise GTRError(f"a request line of {len(line)} characters is too long (at most {MAX_LINE})")
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            raise GTRError(f"not a JSON line: {line[:80]!r}") from None
        request = check_request(message)
        op, rid = request["op"], request.get("id")
        if op == "cancel":
            with lock:
                if request["target"] in pending:
                    cancelled_ids.add(request["target"])
            return
        with lock:
            duplicate = rid is not None and rid in pending
            if not duplicate and op != "ping":
                pending.add(rid)
        if duplicate:  # its replies would be taken for the first one's: refused, and the error names no id
            taken = f"request {op!r}: the id {rid!r} is already taken by a request still running or queued; "
            send({"id": None, "type": "error", "message": taken + "give every request an id of its own"})
        elif op == "ping":
            send({"id": rid, "type": "result", "busy": running[0] is not None})
        else:
            requests.put(request)

    def read() -> None:
        try:
            for line in stdin:
                if not line.strip():
                    continue
                try:
                    take(line)
                except GTRError as error:
                    rid = None
                    with contextlib.suppress(Exception):
                        candidate = json.loads(line).get("id") if len(line) <= MAX_LINE else None
                        rid = candidate if isinstance(candidate, int | str) else None
                    send({"id": rid, "type": "error", "message": str(error)})
                except Exception as error:  # never let one line stop the reader
                    traceback.print_exc(file=sys.stderr)
                    send({"id": None, "type": "error", "message": f"internal error reading a request: {error!r}"})
        finally:
            requests.put(None)

    threading.Thread(target=read, daemon=True).start()
    session = Session(jobs_root)
    if warm_up is not None:
        session.start_warm_up(*warm_up, sys.stderr)
    while (request := requests.get()) is not None:
        rid = request.get("id")
        if request.get("op") == "shutdown":
            send({"id": rid, "type": "result"})
            break
        running[0] = rid
        run_request(
            session,
            request,
            functools.partial(reply, rid),
            functools.partial(cancelled_ids.__contains__, rid),
            sys.stderr,
        )
        running[0] = None
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gtr_backend.server", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs-root", type=Path, help="job folders must lie inside this folder")
    parser.add_argument("--device", default="auto", help="the device to warm up (auto, cpu, cuda, cuda:N, mps)")
    parser.add_argument("--weights", help="the weights to warm up (default: the bundled ones)")
    parser.add_argument("--no-warm-up", action="store_true", help="load the model on the first request instead")
    args = parser.parse_args(argv)
    warm_up = None if args.no_warm_up else (args.weights, args.device)
    return serve(jobs_root=args.jobs_root, warm_up=warm_up)


if __name__ == "__main__":
    code = main()
    # A warm-up still running in its thread (stdin closed early) ends with the process here, not inside PyTorch
    # while the interpreter shuts down.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
