"""A session answers requests (`Session.handle`, by the table `HANDLERS`: op -> handler) and keeps what lasts
between them: the loaded model, the start-up warm-up and its record. `run_request` runs one request and sends
its replies; the backend process (`reader.serve`) and the add-on's in-process backend both use it, so both
modes answer the same way. The fields of each reply are the contract's (`contract.REPLIES`)."""

from __future__ import annotations

import copy
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from ..contract import (
    BAKE_TARGET,
    BAKE_TEXTURE,
    PROTOCOL,
    RECONSTRUCT_OPTIONS,
    BakeToReply,
    CamerasReply,
    FidelityFields,
    HelloReply,
    JobManifest,
    LoadReply,
    ReconstructReply,
    RefineReply,
    UnloadReply,
    check_reply,
    check_request,
    read_cameras,
)
from .jobs import FinishedJob, check_writable, confine, read_bake_target, read_job, read_manifest, write_job
from .requests import load_view_spec, request_options, view_warnings
from .warm import timed, warm_kernels

CONTINUE_TRIPLANE_LR = 0.05  # texture-refinement learning rates when refining a finished result further
CONTINUE_MLP_LR = 3e-5

Emit = Callable[[dict[str, Any]], None]  # sends one reply (progress, result or error)
Cancelled = Callable[[], bool]  # whether the request was cancelled
Handler = Callable[["Session", dict[str, Any], Emit, Cancelled], Mapping[str, Any]]


def _done_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


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

    def __post_init__(self) -> None:
        if self.jobs_root is not None:  # what a backend killed while writing a job left behind
            from ..files import remove_stale_staging

            remove_stale_staging(self.jobs_root)

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
            with timed(timings, "import torch"):
                import torch
            with timed(timings, "import backend"):
                from .. import devices, reconstruction  # noqa: F401 (imported here to time it)

                torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo
            device = devices.resolve_device(device_name)
            if device.type == "cuda":
                with timed(timings, "start CUDA"):
                    torch.zeros(1, device=device)
                    devices.synchronize(device)
            self.warm_stage = "warming up: loading the model"
            model = self.model(weights, device, timings)
            kernels = {}
            if device.type != "cpu":  # on the CPU a first kernel costs little more than a later one
                self.warm_stage = "warming up: running the kernels once"
                with timed(timings, "warm kernels"):
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
        from ..errors import CancelledError

        shown = None
        while not self.warmed.wait(0.1):
            if cancelled():
                raise CancelledError("cancelled while the backend was warming up")
            if self.warm_stage and self.warm_stage != shown:
                shown = self.warm_stage
                emit({"type": "progress", "stage": shown, "fraction": 0.0})

    def job_folder(self, path: str) -> Path:
        """The job folder of a request, resolved, and confined to `jobs_root`."""
        return confine(path, self.jobs_root)

    def handle(self, request: dict[str, Any], emit: Emit, cancelled: Cancelled) -> Mapping[str, Any]:
        """Check `request` (`contract.check_request`) and answer it with its handler (`HANDLERS`); the reply's
        fields are checked against the contract's definition of them (`contract.check_reply`)."""
        from ..errors import GTRError

        op = check_request(request)["op"]
        if op not in HANDLERS:
            raise GTRError(f"the request {op!r} is answered by the server's reader, not by a session")
        return check_reply(op, HANDLERS[op](self, request, emit, cancelled))

    def hello(self, request: dict[str, Any], emit: Emit, cancelled: Cancelled) -> HelloReply:
        import torch

        from .. import __version__
        from ..devices import display_name
        from ..weights import find_default_weights

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
        from ..errors import WeightsError
        from ..weights import find_default_weights, load_model

        path = Path(weights) if weights else find_default_weights()
        if path is None:
            raise WeightsError("no weights file set and none bundled: choose one in the add-on's preferences")
        key = (str(path.resolve()), str(device))
        if key not in self.models:
            self.models.clear()  # one model at a time: GPU memory is precious
            self.models[key] = load_model(path, device, timings=timings).eval()
            self.loads += 1
        return self.models[key]

    def reconstruct(self, request: dict[str, Any], emit: Emit, cancelled: Cancelled) -> ReconstructReply:
        from ..devices import resolve_device
        from ..reconstruction import reconstruct
        from ..weights import find_default_weights

        job = self.job_folder(request["job"])
        check_writable(job)
        views = load_view_spec(request["views"])
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
        info: JobManifest = {
            "views": request["views"],
            "weights": request.get("weights"),
            "weights_name": Path(request.get("weights") or find_default_weights() or "").name,
            "device": str(device),
            "texture_from_views": options.texture_from_views,
            "options": {name: getattr(options, name) for name in RECONSTRUCT_OPTIONS},
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "fidelity": cast(FidelityFields, result.fidelity.as_dict()),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        files = write_job(job, result.mesh, result.colors, info, lods=result.lods)
        refinement = result.refinement
        return {
            "files": files,
            "faces": result.mesh.num_faces,
            "lod_faces": [lod.num_faces for lod in result.lods],
            "loaded_model": self.loads > loads,  # False: the model was still loaded from an earlier request
            "timings": info["timings"],
            "psnr_before": refinement.psnr_before if refinement else None,
            "psnr_after": refinement.psnr_after if refinement else None,
            "fidelity": info["fidelity"],
            "options": info["options"],
            "weights_name": info["weights_name"],
            # A result that fails its views is delivered, but its first warning says so (the add-on marks it).
            "warnings": ([f"{result.problem[0].upper()}{result.problem[1:]}."] if result.problem else [])
            + view_warnings(views)
            + result.notes,
        }

    def unload(self, request: dict[str, Any], emit: Emit, cancelled: Cancelled) -> UnloadReply:
        """Drop the loaded model (once a running warm-up is done) and give its memory back to the device."""
        self.ready(emit, cancelled)
        unloaded = len(self.models)
        self.models.clear()
        from ..devices import release_all

        release_all()
        return {"unloaded": unloaded}

    def cameras(self, request: dict[str, Any], emit: Emit, cancelled: Cancelled) -> CamerasReply:
        """The views of `request["views"]` written as a cameras.json folder into `request["folder"]` (see the
        module docstring); the folder must be new or empty, inside the jobs folder."""
        from ..errors import GTRError
        from ..views import save_views

        folder = self.job_folder(request["folder"])
        if folder.is_dir() and any(folder.iterdir()):
            raise GTRError(f"the folder {folder} for the views is not empty; give a new or empty folder")
        views = load_view_spec(request["views"])
        path = save_views(views, folder)
        return {
            "path": str(path),
            "width": views.width,
            "height": views.height,
            "names": list(views.names),
            "views": read_cameras(path).views,
            "warnings": view_warnings(views),
        }

    def open_job(self, job: Path, emit: Emit, cancelled: Cancelled = lambda: False) -> FinishedJob:
        """A finished job's manifest, model, views, mesh and refined colour field, on the job's device."""
        from ..devices import resolve_device

        info = read_manifest(job)
        device = resolve_device(info.get("device", "auto"))
        self.ready(emit, cancelled)
        emit({"type": "progress", "stage": "load weights", "fraction": 0.0})
        model = self.model(info.get("weights"), device)
        originals, held_out = load_view_spec(info["views"]).to(device).split_held_out()
        stored = read_job(job, device)
        color_field = copy.deepcopy(model.field)
        color_field.load_state_dict({k[len("field.") :]: v for k, v in stored.state.items() if k.startswith("field.")})
        views = originals.resized(model.config.image_size)
        held_out = None if held_out is None else held_out.resized(model.config.image_size)
        return FinishedJob(stored.info, device, originals, views, stored.mesh, color_field, stored.state, held_out)

    def refine(self, request: dict[str, Any], emit: Emit, cancelled: Cancelled) -> RefineReply:
        from ..errors import CancelledError
        from ..export import bake_vertex_colors
        from ..fidelity import fidelity
        from ..reconstruction import bake
        from ..refine import RefineOptions, refine_texture
        from ..refine.projection import ViewColors
        from ..render.raster import get_rasterizer
        from ..views.selection import network_views

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
            size = done.texture_size(job)
            coloured = bake(done.mesh, result.colors, sources, size, rasterizer, check, texture_views=done.views_meet())
        score = cast(FidelityFields, fidelity(coloured, done.views, rasterizer, done.held_out).as_dict())
        info = cast(JobManifest, {**done.info, "fidelity": score})
        files = write_job(job, coloured.to("cpu"), result.colors, info, mesh_files=done.mesh.uv is None)
        return {
            "files": files,
            "psnr_before": result.psnr_before,
            "psnr_after": result.psnr_after,
            "improved": True,
            "fidelity": score,
        }

    def bake_to(self, request: dict[str, Any], emit: Emit, cancelled: Cancelled) -> BakeToReply:
        """A finished job's colours (its refined field under its views' own colours) baked onto the UV layout of
        the mesh in `folder`/BAKE_TARGET (the job's backend frame), written as `folder`/BAKE_TEXTURE."""
        from PIL import Image

        from ..errors import CancelledError, GTRError
        from ..files import atomic_write
        from ..pixels import to_uint8
        from ..reconstruction import bake
        from ..refine import ColorField
        from ..render.raster import get_rasterizer

        job, folder = self.job_folder(request["job"]), self.job_folder(request["folder"])
        size, largest = int(request.get("texture_size", 1024)), int(RECONSTRUCT_OPTIONS["texture_size"].high or 0)
        if size > largest:
            raise GTRError(f"the texture size {size} is larger than {largest}; choose {largest} or less")
        target = read_bake_target(folder / BAKE_TARGET)
        done = self.open_job(job, emit, cancelled)

        def check() -> None:
            if cancelled():
                raise CancelledError("bake cancelled")

        check()
        emit({"type": "progress", "stage": "bake", "fraction": 0.3})
        colors = ColorField(done.state["triplane"], done.field)
        # The target is the user's own mesh, not the surface the views' depth saw: it is rendered for the z-test.
        rasterizer = get_rasterizer(done.device)
        baked = bake(target.to(done.device), colors, done.sources(), size, rasterizer, check, close=False)
        assert baked.texture is not None
        image = Image.fromarray(to_uint8(baked.texture).cpu().numpy())
        path = atomic_write(folder / BAKE_TEXTURE, lambda tmp: image.save(tmp, format="PNG"))
        return {"files": {"texture": str(path)}, "faces": target.num_faces, "texture_size": size}

    def load(self, request: dict[str, Any], emit: Emit, cancelled: Cancelled) -> LoadReply:
        """Load the model ahead of the first request (once a running warm-up is done)."""
        from ..devices import resolve_device

        device = resolve_device(request.get("device") or "auto")
        self.ready(emit, cancelled)
        loads = self.loads
        self.model(request.get("weights"), device)
        return {"device": str(device), "loaded_model": self.loads > loads, "warm_up": self.warm_up_record}


HANDLERS: dict[str, Handler] = {
    "hello": Session.hello,
    "load": Session.load,
    "reconstruct": Session.reconstruct,
    "refine": Session.refine,
    "cameras": Session.cameras,
    "bake_to": Session.bake_to,
    "unload": Session.unload,
}  # ping, cancel and shutdown are the reader's (`reader.serve`)


def run_request(
    session: Session,
    request: dict[str, Any],
    send: Emit,
    cancelled: Cancelled,
    log: TextIO,
) -> None:
    """Run one request and send its replies: progress, then one result (with `seconds`, the time it took) or one
    error (a plain message; `cancelled` true when it was cancelled). Every failure is written to `log` with its
    traceback. Used by `serve` (the backend process) and by the add-on's in-process backend alike, so both
    modes answer the same way."""
    from ..errors import CancelledError, GTRError, OutOfMemoryError

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
        from ..devices import out_of_memory

        if out_of_memory(error):  # outside a reconstruction's stages (loading the model, a bake, a refine)
            message = f"out of memory during '{request.get('op')}': close other programs using the GPU, use a smaller "
            send({"id": rid, "type": "error", "message": message + "texture size, or use the CPU"})
        else:
            send({"id": rid, "type": "error", "message": f"internal error in the backend: {error!r}"})
    if request.get("op") in ("reconstruct", "refine", "bake_to"):
        try:  # the reply is sent and the job's tensors are unreferenced: the model stays
            from ..devices import release_all

            release_all()
        except Exception as error:  # a device in a bad state: the next request says so, this one is answered
            log.write(f"releasing the job's memory failed: {error!r}\n")
