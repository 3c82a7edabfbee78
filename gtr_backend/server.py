"""The backend as a long-lived process for the Blender add-on: `python -m gtr_backend.server`.

Protocol (version `PROTOCOL`): one JSON object per line. Requests on stdin carry an `id` and an `op`;
replies on stdout carry the request's `id` and a `type`: any number of `progress` lines
(`stage`, `fraction` in [0, 1]), then exactly one `result` or `error` (`message`: plain words for the user).
Large data never goes through the pipe: views are read from a view folder and results are written to a job
folder, both named in the request. Logging goes to stderr.

Requests:
- `hello` -> `protocol`, `version`, `torch`, `device` (GPU name or CPU), `cuda`, `weights` (the default file or null)
- `reconstruct` {`views`: {`path`, `orbit`: {azimuths, elevation, fov, distance} or null, `zero123pp`},
  `job`: folder, `weights`, `device`, `options`: {`refine_steps`, `texture_size`, `mesh_resolution`,
  `target_faces`, `geometry_refine`, `geometry_steps`, `texture_from_views`} (each optional)}
  -> writes `mesh.glb`, `mesh.npz` (vertices (V, 3) float32 in the backend frame, faces (F, 3) int32,
  uv (V, 2) float32), `texture.png`, `state.safetensors` (the refined colour field) and `job.json` into `job`;
  replies with the files, timings, the refinement's PSNR and the mesh's silhouette IoU per input view.
- `refine` {`job`, `steps`} -> continues the texture refinement of a finished job against its views (from
  the saved colour field, on the saved mesh and UV layout), bakes it as the reconstruction did (the views' own
  colours laid over the field, unless the job was made with `texture_from_views` off) and rewrites
  `texture.png` and the state; when the
  steps do not raise the input-view PSNR, nothing is rewritten and the reply says `improved: false`.
- `load` {`weights`, `device`} -> loads the model ahead of the first request (the add-on sends it when views
  are imported, so the first Reconstruct click does not wait for it).
- `cancel` {`target`: the id of the running request} -> that request stops at its next check and replies
  `error` with `cancelled: true`.
- `shutdown`.
The model stays loaded between requests, so the second reconstruction skips loading it.
"""

from __future__ import annotations

import copy
import json
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

PROTOCOL = 1
CONTINUE_TRIPLANE_LR = 0.05  # texture-refinement learning rates when refining a finished result further
CONTINUE_MLP_LR = 3e-5

Emit = Callable[[dict[str, Any]], None]


@dataclass
class Session:
    """Handles requests; keeps loaded models between them (keyed by weights file and device)."""

    models: dict[tuple[str, str], Any] = field(default_factory=dict)
    loads: int = 0  # how many times a model was read from disk

    def handle(self, request: dict[str, Any], emit: Emit, cancelled: Callable[[], bool]) -> dict[str, Any]:
        op = request.get("op")
        if op == "hello":
            return self.hello()
        if op == "reconstruct":
            return self.reconstruct(request, emit, cancelled)
        if op == "refine":
            return self.refine(request, emit, cancelled)
        if op == "load":
            from .reconstruction import resolve_device

            device = resolve_device(request.get("device") or "auto")
            loads = self.loads
            self.model(request.get("weights"), device)
            return {"device": str(device), "loaded_model": self.loads > loads}
        from .errors import GTRError

        raise GTRError(f"unknown request {op!r}")

    def hello(self) -> dict[str, Any]:
        import torch

        from . import __version__
        from .weights import find_default_weights

        cuda = torch.cuda.is_available()
        weights = find_default_weights()
        return {
            "protocol": PROTOCOL,
            "version": __version__,
            "torch": torch.__version__,
            "cuda": cuda,
            "device": torch.cuda.get_device_name() if cuda else "CPU",
            "weights": str(weights) if weights else None,
        }

    def model(self, weights: str | None, device: Any) -> Any:
        from .errors import WeightsError
        from .weights import find_default_weights, load_model

        path = Path(weights) if weights else find_default_weights()
        if path is None:
            raise WeightsError("no weights file set and none bundled: choose one in the add-on's preferences")
        key = (str(path.resolve()), str(device))
        if key not in self.models:
            self.models.clear()  # one model at a time: GPU memory is precious
            self.models[key] = load_model(path, device).eval()
            self.loads += 1
        return self.models[key]

    def reconstruct(self, request: dict[str, Any], emit: Emit, cancelled: Callable[[], bool]) -> dict[str, Any]:
        from .reconstruction import ReconstructOptions, reconstruct, resolve_device

        views = _load_view_spec(request["views"])
        device = resolve_device(request.get("device") or "auto")
        emit({"type": "progress", "stage": "load weights", "fraction": 0.0})
        loads = self.loads
        model = self.model(request.get("weights"), device)
        raw = request.get("options") or {}
        defaults = ReconstructOptions()
        options = ReconstructOptions(
            mesh_resolution=raw.get("mesh_resolution") or None,
            geometry_refine=_flag(raw, "geometry_refine", defaults.geometry_refine),
            geometry_steps=int(raw.get("geometry_steps", defaults.geometry_steps)),
            texture_from_views=_flag(raw, "texture_from_views", defaults.texture_from_views),
            refine_steps=int(raw.get("refine_steps", defaults.refine_steps)),
            texture_size=int(raw.get("texture_size", defaults.texture_size)),
            target_faces=int(raw.get("target_faces", defaults.target_faces)),
        )

        def progress(stage: str, fraction: float) -> None:
            emit({"type": "progress", "stage": stage, "fraction": fraction})

        result = reconstruct(views, model, device, options, progress, cancelled)
        job = Path(request["job"])
        job.mkdir(parents=True, exist_ok=True)
        files = _write_job(job, result.mesh, result.colors)
        info = {
            "views": request["views"],
            "weights": request.get("weights"),
            "device": str(device),
            "texture_from_views": options.texture_from_views,
        }
        (job / "job.json").write_text(json.dumps(info, indent=2) + "\n")
        refinement = result.refinement
        return {
            "files": files,
            "faces": result.mesh.num_faces,
            "loaded_model": self.loads > loads,  # False: the model was still loaded from an earlier request
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "psnr_before": refinement.psnr_before if refinement else None,
            "psnr_after": refinement.psnr_after if refinement else None,
            "silhouette_iou": result.silhouette_iou,
        }

    def refine(self, request: dict[str, Any], emit: Emit, cancelled: Callable[[], bool]) -> dict[str, Any]:
        import numpy as np
        import torch
        from safetensors.torch import load_file

        from .errors import CancelledError, GTRError
        from .mesh import Mesh
        from .reconstruction import bake, resolve_device, texture_views
        from .refine import RefineOptions, refine_texture
        from .render.raster import get_rasterizer

        job = Path(request["job"])
        if not (job / "job.json").is_file() or not (job / "state.safetensors").is_file():
            raise GTRError(f"{job}: not a finished reconstruction (job.json or state.safetensors is missing)")
        info = json.loads((job / "job.json").read_text())
        device = resolve_device(info.get("device", "auto"))
        emit({"type": "progress", "stage": "load weights", "fraction": 0.0})
        model = self.model(info.get("weights"), device)
        originals = _load_view_spec(info["views"]).to(device)
        views = originals.resized(model.config.image_size)
        with np.load(job / "mesh.npz", allow_pickle=False) as data:
            mesh = Mesh(
                torch.from_numpy(data["vertices"]).float(),
                torch.from_numpy(data["faces"]).long(),
                uv=torch.from_numpy(data["uv"]).float(),
            ).to(device)
        state = load_file(str(job / "state.safetensors"), device=str(device))
        color_field = copy.deepcopy(model.field)
        color_field.load_state_dict({k[len("field.") :]: v for k, v in state.items() if k.startswith("field.")})
        steps = int(request.get("steps", 20))

        def progress(fraction: float) -> None:
            if cancelled():
                raise CancelledError("refinement cancelled")
            emit({"type": "progress", "stage": "refine", "fraction": 0.9 * fraction})

        rasterizer = get_rasterizer(device)
        # A continuation fine-tunes a colour field that has already converged once: gentler steps than the
        # first refinement (whose cosine schedule ended at zero), so more steps never undo what it reached.
        options = RefineOptions(steps=steps, triplane_lr=CONTINUE_TRIPLANE_LR, mlp_lr=CONTINUE_MLP_LR)
        result = refine_texture(color_field, state["triplane"], mesh, views, options, rasterizer, progress)
        if result.psnr_after <= result.psnr_before:  # no better: keep the texture and state as they are
            return {"files": {}, "psnr_before": result.psnr_before, "psnr_after": result.psnr_before, "improved": False}
        emit({"type": "progress", "stage": "bake", "fraction": 0.9})
        from PIL import Image

        size = Image.open(job / "texture.png").size[0]
        # The same texture path as the first reconstruction: the refined field, under the views' own colours.
        # Jobs made before the views' colours were baked in (no such key) keep their texture as it was made.
        sources = texture_views(originals) if info.get("texture_from_views", False) else None
        textured = bake(mesh, result.colors, sources, size, rasterizer)
        files = _write_job(job, textured.to("cpu"), result.colors, mesh_files=False)
        return {"files": files, "psnr_before": result.psnr_before, "psnr_after": result.psnr_after, "improved": True}


def _flag(options: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false option of a request: JSON true or false (absent: the default)."""
    from .errors import GTRError

    value = options.get(name, default)
    if not isinstance(value, bool):
        raise GTRError(f"the option {name} must be true or false, got {value!r}")
    return value


def _load_view_spec(spec: dict[str, Any]) -> Any:
    from .views import Orbit, load_views

    orbit = spec.get("orbit")
    return load_views(
        Path(spec["path"]),
        orbit=Orbit(
            orbit.get("azimuths"), orbit.get("elevation", 20.0), orbit.get("fov", 40.0), orbit.get("distance", 2.7)
        )
        if orbit
        else None,
        zero123pp=bool(spec.get("zero123pp")),
    )


def _write_job(job: Path, mesh: Any, colors: Any, mesh_files: bool = True) -> dict[str, str]:
    """texture.png and state.safetensors (and mesh.npz + mesh.glb) in `job`; returns their paths by kind."""
    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    from .export import write_mesh

    texture = (mesh.texture.clamp(0, 1) * 255).round().byte().numpy()
    Image.fromarray(texture).save(job / "texture.png")
    state = {"triplane": colors.triplane.detach().float().contiguous().cpu()}
    state.update({f"field.{k}": v.detach().float().contiguous().cpu() for k, v in colors.field.state_dict().items()})
    save_file(state, str(job / "state.safetensors"))
    files = {"texture": str(job / "texture.png"), "state": str(job / "state.safetensors")}
    if mesh_files:
        np.savez(
            job / "mesh.npz",
            vertices=mesh.vertices.numpy().astype(np.float32),
            faces=mesh.faces.numpy().astype(np.int32),
            uv=mesh.uv.numpy().astype(np.float32),
        )
        write_mesh(mesh, job / "mesh.glb")
        files.update({"npz": str(job / "mesh.npz"), "glb": str(job / "mesh.glb")})
    return files


def serve(stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Answer requests from `stdin` until it closes or `shutdown`; one request runs at a time, while a reader
    thread keeps listening for `cancel`."""
    from .errors import CancelledError, GTRError

    lock = threading.Lock()
    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
    cancelled_ids: set[Any] = set()

    def send(message: dict[str, Any]) -> None:
        with lock:
            stdout.write(json.dumps(message) + "\n")
            stdout.flush()

    def read() -> None:
        for line in stdin:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                send({"id": None, "type": "error", "message": f"not a JSON line: {line[:80]!r}"})
                continue
            if message.get("op") == "cancel":
                cancelled_ids.add(message.get("target"))
            else:
                requests.put(message)
        requests.put(None)

    threading.Thread(target=read, daemon=True).start()
    session = Session()
    while (request := requests.get()) is not None:
        rid = request.get("id")
        if request.get("op") == "shutdown":
            send({"id": rid, "type": "result"})
            break
        start = time.perf_counter()

        def emit(message: dict[str, Any], rid: Any = rid) -> None:
            send({"id": rid, **message})

        def cancelled(rid: Any = rid) -> bool:
            return rid in cancelled_ids

        try:
            payload = session.handle(request, emit, cancelled)
            send({"id": rid, "type": "result", "seconds": round(time.perf_counter() - start, 4), **payload})
        except CancelledError as error:
            send({"id": rid, "type": "error", "cancelled": True, "message": str(error)})
        except GTRError as error:
            send({"id": rid, "type": "error", "message": str(error)})
        except Exception as error:  # a bug: the user gets one line, the log gets the traceback
            traceback.print_exc(file=sys.stderr)
            send({"id": rid, "type": "error", "message": f"internal error in the backend: {error!r}"})
        cancelled_ids.discard(rid)
    return 0


if __name__ == "__main__":
    sys.exit(serve())
