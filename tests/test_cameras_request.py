"""The `cameras` request the add-on builds its camera rig from: any view set in, a cameras.json folder with the
backend's own cameras out (the same numbers `load_views` gives), checked like every request."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from backend_process import Server
from PIL import Image

from gtr_backend.contract import check_request
from gtr_backend.errors import GTRError
from gtr_backend.views import Orbit, load_views, zero123pp_poses

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "toy"


def ask(server: Server, rid: int, views: dict, folder: Path) -> dict:
    server.send({"id": rid, "op": "cameras", "protocol": 1, "views": views, "folder": str(folder)})
    return server.final(rid)


def assert_same_cameras(reply: dict, expected_k: torch.Tensor, expected_c2w: torch.Tensor) -> None:
    """The reply's entries and the folder it wrote both hold exactly the expected cameras."""
    k = torch.tensor([[v[name] for name in ("fx", "fy", "cx", "cy")] for v in reply["views"]], dtype=torch.float64)
    c2w = torch.tensor([v["matrix"] for v in reply["views"]], dtype=torch.float64)
    assert torch.allclose(k, expected_k.double(), atol=1e-5) and torch.allclose(c2w, expected_c2w.double(), atol=1e-6)
    written = load_views(reply["path"])
    assert torch.allclose(written.intrinsics.double(), expected_k.double(), atol=1e-4)
    assert torch.allclose(written.c2w.double(), expected_c2w.double(), atol=1e-6)
    assert (written.width, written.height) == (reply["width"], reply["height"])


def test_a_camera_folder_comes_back_with_its_own_cameras_and_images(server, tmp_path):
    reply = ask(server, 1, {"path": str(EXAMPLE), "orbit": None, "zero123pp": False}, tmp_path / "rig")
    assert reply["type"] == "result", reply
    original = load_views(EXAMPLE)
    assert_same_cameras(reply, original.intrinsics, original.c2w)
    assert reply["names"] == [f"view_{i:03d}.png" for i in range(4)] and (reply["width"], reply["height"]) == (512, 512)
    written = load_views(reply["path"])
    assert torch.allclose(written.rgb * written.mask, original.rgb * original.mask, atol=1 / 255)  # the same pixels
    assert torch.allclose(written.mask, original.mask, atol=1 / 255)
    assert json.loads(Path(reply["path"]).read_text())["camera_axes"] == "opencv"


def test_orbit_images_get_the_orbit_the_request_names(server, tmp_path):
    orbit = {"azimuths": None, "elevation": 35.0, "fov": 30.0, "distance": 3.1}
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):  # three images: the azimuths are 0, 120, 240
        Image.open(EXAMPLE / f"view_{i:03d}.png").save(images / f"shot_{i}.png")
    reply = ask(server, 2, {"path": str(images), "orbit": orbit, "zero123pp": False}, tmp_path / "rig")
    assert reply["type"] == "result", reply
    expected = Orbit(None, 35.0, 30.0, 3.1)
    focal = 0.5 * 512 / np.tan(np.radians(15.0))
    k = torch.tensor([[focal, focal, 256.0, 256.0]] * 3, dtype=torch.float64)
    assert_same_cameras(reply, k, expected.poses(3))
    assert reply["names"] == ["shot_0.png", "shot_1.png", "shot_2.png"]


def test_a_zero123pp_grid_becomes_six_cells_with_the_grids_cameras(server, tmp_path):
    cells = [Image.open(EXAMPLE / f"view_{i % 4:03d}.png").convert("RGBA").resize((320, 320)) for i in range(6)]
    grid = Image.new("RGBA", (640, 960))
    for i, cell in enumerate(cells):
        row, col = divmod(i, 2)
        grid.paste(cell, (col * 320, row * 320))
    grid.save(tmp_path / "grid.png")
    reply = ask(server, 3, {"path": str(tmp_path / "grid.png"), "orbit": None, "zero123pp": True}, tmp_path / "rig")
    assert reply["type"] == "result", reply
    focal = 0.5 * 320 / np.tan(np.radians(15.0))
    assert_same_cameras(reply, torch.tensor([[focal, focal, 160.0, 160.0]] * 6), zero123pp_poses())
    cell_2 = np.asarray(Image.open(Path(reply["path"]).parent / reply["views"][2]["image"]))
    assert np.abs(cell_2.astype(int) - np.asarray(cells[2]).astype(int))[..., 3].max() <= 1  # row 1, column 0


def test_bad_requests_are_refused_in_words(server, tmp_path):
    good = {"path": str(EXAMPLE), "orbit": None, "zero123pp": False}
    with pytest.raises(GTRError, match="'folder' is missing"):
        check_request({"op": "cameras", "views": good})
    with pytest.raises(GTRError, match="unknown field 'images'"):
        check_request({"op": "cameras", "views": good, "folder": "x", "images": []})
    with pytest.raises(GTRError, match="'views' must be an object"):
        check_request({"op": "cameras", "views": "x", "folder": "x"})
    outside = ask(server, 4, good, tmp_path.parent.parent.parent / "elsewhere")
    assert outside["type"] == "error" and "not inside the jobs folder" in outside["message"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    full = ask(server, 5, good, tmp_path / "full")
    assert full["type"] == "error" and "not empty" in full["message"]
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    missing = ask(server, 6, {"path": str(tmp_path / "nothing"), "orbit": None}, tmp_path / "rig")
    assert missing["type"] == "error" and "no such file or folder" in missing["message"]
    assert not (tmp_path / "rig").exists()  # nothing written for views that cannot be read
