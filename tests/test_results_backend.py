"""What the backend gives the add-on's artist workflow: a fidelity score and the settings with every result,
vertex colours instead of a texture, Bake to Active onto another UV layout, Unload Model, a cancel that stops
within 2 s, and lower settings to retry with after running out of memory."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gtr_backend.contract import BAKE_TARGET, BAKE_TEXTURE, RECONSTRUCT_OPTIONS
from gtr_backend.errors import OutOfMemoryError
from gtr_backend.export.atlas import fast_unwrap
from gtr_backend.fidelity import fidelity
from gtr_backend.mesh import Mesh
from gtr_backend.reconstruction import ReconstructOptions, Stages
from gtr_backend.render import TorchRasterizer, render_mesh
from gtr_backend.server import Session, request_options, run_request
from gtr_backend.views import load_views
from gtr_backend.weights import find_default_weights

pytestmark = pytest.mark.skipif(find_default_weights() is None, reason="this copy has no bundled weights")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "toy"
OPTIONS = {"refine_steps": 3, "texture_size": 256, "mesh_resolution": 48, "geometry_steps": 5}
VIEWS = {"path": str(EXAMPLE), "orbit": None, "zero123pp": False}


def run(session: Session, request: dict, cancel_after: str | None = None) -> list[dict]:
    """`run_request` in this process: every reply, in order (cancelled once a progress names `cancel_after`)."""
    replies: list[dict] = []
    log = open("/dev/null", "w")  # noqa: SIM115 - closed below

    def cancelled() -> bool:
        return cancel_after is not None and any(r.get("stage") == cancel_after for r in replies)

    try:
        run_request(session, {"id": 1, **request}, replies.append, cancelled, log)
    finally:
        log.close()
    return replies


def job_mesh(job: Path) -> Mesh:
    with np.load(job / "mesh.npz", allow_pickle=False) as data:
        arrays = {k: torch.from_numpy(data[k]) for k in data.files}
    texture = None
    if (job / "texture.png").is_file():
        texture = torch.from_numpy(np.asarray(Image.open(job / "texture.png").convert("RGB")).copy()).float() / 255
    return Mesh(
        arrays["vertices"].float(),
        arrays["faces"].long(),
        uv=arrays["uv"].float() if "uv" in arrays else None,
        texture=texture,
        vertex_colors=arrays["colors"].float() if "colors" in arrays else None,
    )


@pytest.fixture(scope="module")
def session() -> Session:
    return Session()


@pytest.fixture(scope="module")
def textured(session: Session, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    job = tmp_path_factory.mktemp("textured") / "job"
    replies = run(session, {"op": "reconstruct", "views": VIEWS, "job": str(job), "device": "cpu", "options": OPTIONS})
    assert replies[-1]["type"] == "result", replies[-1]
    return job, replies[-1]


def test_every_result_carries_its_fidelity_settings_weights_and_timings(session, textured):
    job, reply = textured
    info = json.loads((job / "job.json").read_text())
    # The score is the finished mesh against the views it was made from, recomputed here independently.
    views = load_views(EXAMPLE).resized(session.model(None, torch.device("cpu")).config.image_size)
    mesh = job_mesh(job)
    render = render_mesh(mesh, views.intrinsics, views.c2w, views.height, views.width, TorchRasterizer())
    inside = views.mask[:, 0] > 0.99
    mse = (render.rgb.permute(0, 2, 3, 1)[inside] - views.on_white().permute(0, 2, 3, 1)[inside]).square().mean()
    assert reply["fidelity"]["psnr"] == pytest.approx(10 * np.log10(1 / float(mse)), abs=0.05)
    covered, masks = render.fragments.mask, views.foreground()
    ious = ((covered & masks).flatten(1).sum(1) / (covered | masks).flatten(1).sum(1)).tolist()
    assert reply["fidelity"]["mask_iou"] == pytest.approx(min(ious), abs=1e-3) and min(ious) > 0.9
    assert reply["fidelity"]["psnr"] > 15  # the texture reproduces the views it came from
    assert info["fidelity"] == reply["fidelity"] and info["weights_name"] == find_default_weights().name
    assert info["options"] == {**{k: o.default for k, o in RECONSTRUCT_OPTIONS.items()}, **OPTIONS}
    assert set(info["timings"]) >= {"triplane", "carve", "refine", "unwrap", "bake", "score"}


def test_vertex_colours_instead_of_a_texture(session, tmp_path, textured):
    job = tmp_path / "job"
    options = {**OPTIONS, "vertex_colors": True}
    request = {"op": "reconstruct", "views": VIEWS, "job": str(job), "device": "cpu", "options": options}
    reply = run(session, request)[-1]
    assert reply["type"] == "result", reply
    assert not (job / "texture.png").exists() and "texture" not in reply["files"]
    with np.load(job / "mesh.npz", allow_pickle=False) as data:
        assert "uv" not in data.files and data["colors"].shape == (len(data["vertices"]), 3)
    assert reply["fidelity"]["psnr"] > textured[1]["fidelity"]["psnr"] - 4  # coarser, yet the same colours
    before = job_mesh(job).vertex_colors
    refined = run(session, {"op": "refine", "job": str(job), "steps": 5})[-1]
    assert refined["type"] == "result" and refined["psnr_after"] > refined["psnr_before"]
    assert float((job_mesh(job).vertex_colors - before).abs().mean()) > 1e-4  # the new colours were written


def test_bake_to_another_uv_layout_shows_the_same_colours(session, textured, tmp_path):
    job, _ = textured
    mesh = job_mesh(job)
    folder = job.parent / "bake"
    folder.mkdir()
    # Bake to Active onto the result's own layout reproduces its texture ...
    target = {"vertices": mesh.vertices.numpy(), "faces": mesh.faces.numpy().astype(np.int32), "uv": mesh.uv.numpy()}
    np.savez(folder / BAKE_TARGET, **target)
    reply = run(session, {"op": "bake_to", "job": str(job), "folder": str(folder), "texture_size": 256})[-1]
    assert reply["type"] == "result", reply
    baked = torch.from_numpy(np.asarray(Image.open(folder / BAKE_TEXTURE).convert("RGB")).copy()).float() / 255
    assert float((baked - mesh.texture).abs().mean()) < 0.01
    # ... and onto a different layout (another atlas, twice the size) puts the same colours on the surface.
    other = fast_unwrap(Mesh(mesh.vertices, mesh.faces), 512)
    target = {"vertices": other.vertices.numpy(), "faces": other.faces.numpy().astype(np.int32), "uv": other.uv.numpy()}
    np.savez(folder / BAKE_TARGET, **target)
    reply = run(session, {"op": "bake_to", "job": str(job), "folder": str(folder), "texture_size": 512})[-1]
    texture = torch.from_numpy(np.asarray(Image.open(folder / BAKE_TEXTURE).convert("RGB")).copy()).float() / 255
    assert texture.shape == (512, 512, 3)
    views = load_views(EXAMPLE).resized(256)
    original = fidelity(mesh, views, TorchRasterizer())
    rebaked = fidelity(Mesh(other.vertices, other.faces, uv=other.uv, texture=texture), views, TorchRasterizer())
    assert rebaked.psnr is not None and original.psnr is not None and rebaked.psnr > original.psnr - 0.5
    # A broken target is one line that says what is wrong.
    np.savez(folder / BAKE_TARGET, vertices=np.zeros((3, 3)), faces=np.array([[0, 1, 7]]), uv=np.zeros((3, 2)))
    error = run(session, {"op": "bake_to", "job": str(job), "folder": str(folder)})[-1]
    assert error["type"] == "error" and "faces name missing vertices" in error["message"]


def test_unload_drops_the_model_and_the_next_job_loads_it_again(textured):
    session = Session()
    assert run(session, {"op": "load", "device": "cpu"})[-1]["loaded_model"]
    assert run(session, {"op": "unload"})[-1]["unloaded"] == 1 and not session.models
    assert run(session, {"op": "load", "device": "cpu"})[-1]["loaded_model"] and session.loads == 2


def test_a_cancel_stops_the_job_within_two_seconds(session, tmp_path):
    """The cancel arrives while the texture refinement runs; the error reply follows within 2 s."""
    options = {**OPTIONS, "refine_steps": 500}
    request = {"op": "reconstruct", "views": VIEWS, "job": str(tmp_path / "job"), "device": "cpu", "options": options}
    replies: list[dict] = []
    asked: list[float] = []

    def cancelled() -> bool:
        if not asked and any(r.get("stage") == "refine" for r in replies):
            asked.append(time.perf_counter())
        return bool(asked)

    with open(tmp_path / "log", "w") as log:
        arguments = (session, {"id": 5, **request}, replies.append, cancelled, log)
        thread = threading.Thread(target=run_request, args=arguments)
        thread.start()
        thread.join(timeout=120)
    stopped = time.perf_counter()
    assert replies[-1]["type"] == "error" and replies[-1]["cancelled"]
    assert stopped - asked[0] < 2.0 and not (tmp_path / "job").exists()


def test_a_bake_stops_when_cancelled_and_refuses_a_texture_too_large(session, textured):
    job, _ = textured
    folder = job.parent / "bake-cancel"
    folder.mkdir()
    mesh = job_mesh(job)
    np.savez(folder / BAKE_TARGET, vertices=mesh.vertices.numpy(), faces=mesh.faces.numpy(), uv=mesh.uv.numpy())
    request = {"op": "bake_to", "job": str(job), "folder": str(folder), "texture_size": 256}
    replies: list[dict] = []
    with open(folder / "log", "w") as log:
        run_request(session, {"id": 3, **request}, replies.append, lambda: True, log)
    assert replies[-1]["type"] == "error" and replies[-1]["cancelled"] and not (folder / BAKE_TEXTURE).exists()
    error = run(session, {**request, "texture_size": 1 << 14})[-1]
    assert error["type"] == "error" and "larger than 4096" in error["message"]


def test_nothing_lower_to_offer_and_out_of_memory_outside_the_stages():
    smallest = ReconstructOptions(mesh_resolution=32, texture_size=256, target_faces=1000)
    stages = Stages.planned(torch.device("cpu"), smallest)
    with pytest.raises(OutOfMemoryError) as raised, stages.stage("refine"):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")
    assert raised.value.retry_options == {} and "try again" not in str(raised.value)
    # Apple's GPU says it with a RuntimeError; the network stage gets no lower settings (they would not help).
    stages = Stages.planned(torch.device("cpu"), ReconstructOptions())
    with pytest.raises(OutOfMemoryError) as raised, stages.stage("carve"):
        raise RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)")
    assert raised.value.retry_options["mesh_resolution"] == 96
    with pytest.raises(OutOfMemoryError) as raised, stages.stage("triplane"):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")
    assert raised.value.retry_options == {} and "use the CPU" in str(raised.value)
    with pytest.raises(RuntimeError, match="shape mismatch"), stages.stage("carve"):
        raise RuntimeError("shape mismatch")  # any other error goes on as it is

    class Exhausted(Session):
        def handle(self, request, emit, cancelled):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    (reply,) = run(Exhausted(), {"op": "bake_to", "job": "/tmp/x", "folder": "/tmp/y"})
    assert reply["type"] == "error" and "out of memory during 'bake_to'" in reply["message"]
    assert "internal error" not in reply["message"] and "retry_options" not in reply


def test_out_of_memory_offers_lower_settings_to_retry_with():
    options = ReconstructOptions(mesh_resolution=256, texture_size=2048, target_faces=0)
    stages = Stages.planned(torch.device("cpu"), options)
    with pytest.raises(OutOfMemoryError) as raised, stages.stage("carve"):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    lower = raised.value.retry_options
    assert lower == {"mesh_resolution": 192, "texture_size": 1024, "target_faces": 20000}
    assert "mesh resolution 192" in str(raised.value) and "'carve'" in str(raised.value)
    retry = request_options(lower)  # the server takes them as they are
    assert retry.mesh_resolution < 256 and retry.texture_size < 2048
    # Through the server: the error reply carries them for the add-on's Retry button.

    class Exhausted(Session):
        def handle(self, request, emit, cancelled):
            raise OutOfMemoryError("out of GPU memory during 'carve': try again with lower settings", lower)

    (reply,) = run(Exhausted(), {"op": "reconstruct", "views": VIEWS, "job": "/tmp/x"})
    assert reply["type"] == "error" and reply["retry_options"] == lower and "try again" in reply["message"]


def test_a_link_in_a_job_folder_is_never_followed_or_copied(tmp_path, fitted_sphere):
    """A job folder holding a link to a folder outside: after the job is written, the link is gone and nothing
    of what it pointed to was copied (a link to / or ~ would have copied the whole tree)."""
    from gtr_backend.mesh import Mesh
    from gtr_backend.refine import ColorField
    from gtr_backend.server.jobs import write_job

    field, triplane, _ = fitted_sphere
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not the job's")
    job = tmp_path / "jobs" / "one"
    job.mkdir(parents=True)
    (job / "extra").symlink_to(outside, target_is_directory=True)
    (job / "kept.txt").write_text("the job's own")
    mesh = Mesh(torch.eye(3), torch.tensor([[0, 1, 2]]), vertex_colors=torch.ones(3, 3))
    write_job(job, mesh, ColorField(triplane, field), {"options": {}})  # type: ignore[arg-type]
    assert not (job / "extra").exists() and (job / "kept.txt").read_text() == "the job's own"
    assert (outside / "precious.txt").read_text() == "not the job's"
