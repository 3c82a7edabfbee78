"""The backend process the Blender add-on talks to: JSON lines in and out, model kept, cancel, refine."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from blender_addon.backend.client import PROTOCOL as ADDON_PROTOCOL
from gtr_backend.weights import find_default_weights

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "toy"
OPTIONS = {"refine_steps": 3, "texture_size": 256, "mesh_resolution": 48, "geometry_steps": 5}


def input_view_psnr(job: Path) -> float:
    """The job's mesh and texture seen from its input cameras, against the input views inside the masks."""
    import torch
    from PIL import Image

    from gtr_backend.fidelity import input_view_psnr as psnr_of
    from gtr_backend.mesh import Mesh
    from gtr_backend.render import TorchRasterizer
    from gtr_backend.views import load_views

    with np.load(job / "mesh.npz", allow_pickle=False) as data:
        vertices, faces, uv = (torch.from_numpy(data[k]) for k in ("vertices", "faces", "uv"))
    texture = torch.from_numpy(np.asarray(Image.open(job / "texture.png").convert("RGB"))).float() / 255
    mesh = Mesh(vertices.float(), faces.long(), uv.float(), texture)
    return psnr_of(mesh, load_views(EXAMPLE).resized(256), TorchRasterizer())


@pytest.mark.skipif(find_default_weights() is None, reason="this copy has no bundled weights")
def test_reconstruct_then_refine_through_the_protocol(server, tmp_path):
    server.send({"id": 1, "op": "hello"})
    (hello,) = server.replies(1)
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"  # the machine's, whatever it runs on
    assert hello["protocol"] == ADDON_PROTOCOL and hello["device"] == device
    assert hello["weights"].endswith(".safetensors")
    views = {"path": str(EXAMPLE), "orbit": None, "zero123pp": False}
    sent = time.perf_counter()
    server.send(
        {
            "id": 2,
            "op": "reconstruct",
            "views": views,
            "job": str(tmp_path / "job"),
            "device": "cpu",
            "options": OPTIONS,
        }
    )
    replies = server.replies(2)
    wall = time.perf_counter() - sent
    progress = [r for r in replies if r["type"] == "progress"]
    assert replies[-1]["type"] == "result", replies[-1]
    assert len(progress) > 5 and progress[-1]["fraction"] == pytest.approx(1.0)
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions)
    with np.load(tmp_path / "job" / "mesh.npz", allow_pickle=False) as mesh:
        assert mesh["faces"].shape[1] == 3 and mesh["uv"].shape == (len(mesh["vertices"]), 2)
        assert np.abs(mesh["vertices"]).max() < 1.0
    assert (tmp_path / "job" / "mesh.glb").stat().st_size > 1000
    first = replies[-1]["seconds"]
    server.send(
        {
            "id": 3,
            "op": "reconstruct",
            "views": views,
            "job": str(tmp_path / "job2"),
            "device": "cpu",
            "options": OPTIONS,
        }
    )
    second = server.replies(3)[-1]
    # The server loaded the model when it started (its warm-up, on the CPU: --device cpu), so neither loads it.
    assert not replies[-1]["loaded_model"] and second["type"] == "result" and not second["loaded_model"]
    assert 0 < first <= wall  # the reply's own timing is the time the request took
    assert min(replies[-1]["fidelity"]["mask_iou_per_view"]) > 0.95  # the mesh matches every input view's mask
    assert json.loads((tmp_path / "job" / "job.json").read_text())["texture_from_views"] is True
    before = input_view_psnr(tmp_path / "job")
    server.send({"id": 4, "op": "refine", "job": str(tmp_path / "job"), "steps": 5})
    refined = server.replies(4)[-1]
    assert refined["type"] == "result" and refined["psnr_after"] > refined["psnr_before"]
    # Refine Texture bakes like the reconstruction did: the views' own colours stay on the surface.
    assert input_view_psnr(tmp_path / "job") > before - 0.2


def test_errors_are_plain_messages_and_cancel_stops_a_run(server, tmp_path):
    server.send({"id": 10, "op": "reconstruct", "views": {"path": str(tmp_path / "nothing")}, "job": str(tmp_path)})
    error = server.replies(10)[-1]
    assert error["type"] == "error" and "nothing" in error["message"] and "Traceback" not in error["message"]
    server.send({"id": 11, "op": "dance"})
    assert "unknown request 'dance'" in server.replies(11)[-1]["message"]
    server.send({"id": 12, "op": "refine", "job": str(tmp_path)})
    assert "not a finished reconstruction" in server.replies(12)[-1]["message"]
    views = {"path": str(EXAMPLE), "orbit": None, "zero123pp": False}
    server.send(
        {
            "id": 13,
            "op": "reconstruct",
            "views": views,
            "job": str(tmp_path / "c"),
            "device": "cpu",
            "options": {**OPTIONS, "refine_steps": 200},
        }
    )
    server.send({"op": "cancel", "target": 13})
    final = server.replies(13)[-1]
    assert final["type"] == "error" and final.get("cancelled") is True
    assert not (tmp_path / "c" / "mesh.npz").exists()
