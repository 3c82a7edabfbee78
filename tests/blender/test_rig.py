"""The camera rig in Blender: imported views become cameras with the views' exact intrinsics and poses at the 3D
cursor; Export Views gives back a view folder the backend reads to the same cameras (and to the artist's edits);
Reconstruct reads the rig as it is now; Render Selected can keep its capture cameras as a rig."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gtr_backend.views import Orbit, intrinsics_from_fov, load_views, zero123pp_poses

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "toy"
BACKEND_TO_BLENDER = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def off_centre_views(folder: Path) -> Path:
    """The example's views with fx != fy and a principal point off the centre (different in each view)."""
    folder.mkdir()
    data = json.loads((EXAMPLE / "cameras.json").read_text())
    for i, view in enumerate(data["views"]):
        shutil.copyfile(EXAMPLE / view["image"], folder / view["image"])
        view["fy"] = view["fx"] / 1.1
        view["cx"], view["cy"] = 240.5 + 7 * i, 270.25 - 5 * i
    (folder / "cameras.json").write_text(json.dumps(data))
    Image.open(EXAMPLE / "view_003.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "other.png")
    return folder


def zero123pp_grid(path: Path) -> Path:
    grid = Image.new("RGBA", (640, 960))
    for i in range(6):
        row, col = divmod(i, 2)
        grid.paste(
            Image.open(EXAMPLE / f"view_{i % 4:03d}.png").convert("RGBA").resize((320, 320)), (col * 320, row * 320)
        )
    grid.save(path)
    return path


def world_matrix(c2w: torch.Tensor, cursor: np.ndarray) -> np.ndarray:
    """Where a camera with OpenCV c2w (backend frame) stands in Blender when the rig's origin is at `cursor`."""
    translation = np.eye(4)
    translation[:3, 3] = cursor
    return translation @ BACKEND_TO_BLENDER @ c2w.double().numpy() @ OPENCV_TO_OPENGL


def assert_same_views(a, b, names=None) -> None:
    assert torch.allclose(a.intrinsics.double(), b.intrinsics.double(), rtol=1e-5, atol=0)
    assert torch.allclose(a.c2w.double(), b.c2w.double(), atol=1e-5)
    assert (a.width, a.height) == (b.width, b.height)


def test_import_export_round_trip_edits_and_replacing_the_rig(blender, extension_zip, tmp_path, bpy_python):
    views = off_centre_views(tmp_path / "synthetic")
    orbit = tmp_path / "orbit"
    orbit.mkdir()
    for i in range(3):
        shutil.copyfile(EXAMPLE / f"view_{i:03d}.png", orbit / f"shot_{i}.png")
    grid = zero123pp_grid(tmp_path / "grid.png")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    r = blender(
        "rig_import_export.py", str(extension_zip), str(views), str(orbit), str(grid), str(scratch), python=bpy_python
    )
    original = load_views(views)
    cursor = np.array([1.5, -2.0, 0.75])

    # 1. One camera per view, parented to an origin at the 3D cursor, at the view's pose, its image packed.
    imported = r["imported"]
    assert (
        imported["collection"] == "GTR Views" and imported["rigs"] == ["GTR Views"] and imported["name"] == "synthetic"
    )
    assert np.allclose(np.array(imported["origin"])[:3, 3], cursor)
    assert [c["name"] for c in imported["cameras"]] == [f"view_{i:03d}" for i in range(4)]
    for i, camera in enumerate(imported["cameras"]):
        assert np.allclose(camera["matrix_world"], world_matrix(original.c2w[i], cursor), atol=1e-5), i
        assert camera["image"] == camera["source"] == f"view_{i:03d}.png" and camera["image_size"] == [512, 512]
        assert camera["packed"] and camera["parent"] == "Views Origin"
    # The scene renders at the views' size with their pixel aspect (fy / fx = 1 / 1.1).
    assert r["render"] == [512, 512] and r["pixel_aspect"] == pytest.approx([1.0, 1.1])
    # Blender's own projection through every rig camera lands where the view's intrinsics put each point.
    names = [c["name"] for c in imported["cameras"]]
    for case in r["projections"]:
        i = names.index(case["camera"])
        backend = np.linalg.inv(BACKEND_TO_BLENDER) @ np.array([*(np.array(case["point"]) - cursor), 1.0])
        x, y, z, _ = np.linalg.inv(original.c2w[i].double().numpy()) @ backend
        fx, fy, cx, cy = original.intrinsics[i].tolist()
        assert case["pixel"] == pytest.approx([fx * x / z + cx, fy * y / z + cy], abs=2e-3), case

    # 2. Exported as imported: the backend reads the same cameras; a non-empty folder is refused.
    assert r["export"] == "FINISHED"
    assert r["exported files"] == ["cameras.json", *(f"view_{i:03d}.png" for i in range(4))]
    assert_same_views(load_views(scratch / "exported"), original)
    assert "not empty" in r["export again"] and "exported" in r["export again"]
    for case in ("export onto a file", "export below a file"):  # named as the file it is, not "not empty"
        assert "cameras.json is a file, not a folder" in r[case] and "not empty" not in r[case], r[case]

    # 3. The edits show: the moved camera moved (Blender +X, +Z = backend +X, +Y), the deleted one is gone, the
    # swapped image is the new file, byte for byte.
    edited = load_views(scratch / "edited")
    keep = [0, 2, 3]
    assert edited.num_views == 3
    assert torch.allclose(edited.intrinsics.double(), original.intrinsics[keep].double(), rtol=1e-5)
    expected = original.c2w[keep].double().clone()
    expected[0, :3, 3] += torch.tensor([0.3, 0.2, 0.0], dtype=torch.float64)
    assert torch.allclose(edited.c2w.double(), expected, atol=1e-5)
    entries = json.loads((scratch / "edited" / "cameras.json").read_text())["views"]
    assert [e["camera"] for e in entries] == ["view_000", "view_002", "view_003"]
    assert (scratch / "edited" / entries[1]["image"]).read_bytes() == (views / "other.png").read_bytes()

    # 4. A camera without an image is named, and nothing is written; an existing empty folder is fine.
    assert "view_003" in r["no image"] and "no background image" in r["no image"] and not r["no image folder"]
    assert r["export to empty folder"] == "FINISHED" and load_views(scratch / "empty").num_views == 3

    # 5. Orbit images replace the rig: the orbit's cameras at the origin; the old cameras and images are gone.
    assert r["orbit"]["rigs"] == ["GTR Views"] and len(r["orbit"]["cameras"]) == 3
    assert r["old images"] == ["other.png", "view_000.png"] and r["old images left"] == []
    assert r["undone"]["after"] == r["undone"]["before"] == ["view_000", "view_002", "view_003"] and r["redone"]
    assert r["old cameras left"] == []
    poses = Orbit(None, 30.0, 35.0, 3.0).poses(3)
    for i, camera in enumerate(r["orbit"]["cameras"]):
        assert np.allclose(camera["matrix_world"], world_matrix(poses[i], np.zeros(3)), atol=1e-5)
    exported_orbit = load_views(scratch / "orbit")
    assert torch.allclose(exported_orbit.c2w.double(), poses, atol=1e-5)
    assert torch.allclose(
        exported_orbit.intrinsics.double(), intrinsics_from_fov(35.0, 512, 512).expand(3, 4), rtol=1e-5
    )

    # 6. A failed import leaves the rig as it was.
    assert "notes.png" in r["failed import"] and r["rig kept"]

    # 7. A Zero123++ grid: six cameras with the grid's poses, each with its own cell as image.
    assert len(r["grid"]["cameras"]) == 6 and all(c["image_size"] == [320, 320] for c in r["grid"]["cameras"])
    exported_grid = load_views(scratch / "grid")
    assert torch.allclose(exported_grid.c2w.double(), zero123pp_poses(), atol=1e-5)
    assert torch.allclose(
        exported_grid.intrinsics.double(), intrinsics_from_fov(30.0, 320, 320).expand(6, 4), rtol=1e-5
    )
    cells = [
        np.asarray(Image.open(scratch / "grid" / e["image"]))[..., 3]
        for e in json.loads((scratch / "grid" / "cameras.json").read_text())["views"]
    ]
    source = np.asarray(Image.open(grid))[..., 3]
    assert np.array_equal(cells[3], source[320:640, 320:640])  # cell 3: row 1, column 1


def test_render_selected_keeps_its_rig_and_reconstruct_reads_the_moved_rig(blender, extension_zip, tmp_path):
    r = blender("rig_reconstruct.py", str(extension_zip), str(tmp_path))
    assert r["render_unchanged"]  # keeping the rig does not touch the scene's render settings
    rig, capture_job = r["rig"], Path(r["capture_job"])
    captured = load_views(capture_job / "views")
    capture = json.loads((capture_job / "views" / "capture.json").read_text())
    centre, scale = np.array(capture["centre"]), capture["scale"]
    # The rig's origin maps the backend frame onto the captured object; each camera stands where it rendered.
    expected_origin = np.eye(4)
    expected_origin[:3, :3] /= scale
    expected_origin[:3, 3] = centre
    assert np.allclose(rig["origin"], expected_origin, atol=1e-5)
    assert rig["name"] == "Source" and rig["cameras"] == [f"view_{i:03d}" for i in range(4)]
    assert rig["images"] == [f"Source view_{i:03d}.png" for i in range(4)] and all(rig["same_bytes"])
    for i, matrix in enumerate(rig["matrix_world"]):
        expected = expected_origin @ BACKEND_TO_BLENDER @ captured.c2w[i].double().numpy() @ OPENCV_TO_OPENGL
        assert np.allclose(np.array(matrix)[:3, 3], expected[:3, 3], atol=1e-5)
        rotation = np.array(matrix)[:3, :3]
        assert np.allclose(rotation / np.linalg.norm(rotation, axis=0), expected[:3, :3] * scale, atol=1e-5)
    # Export Views of the kept rig gives the capture's own cameras.
    assert r["export"] == ["FINISHED"]
    assert_same_views(load_views(tmp_path / "kept"), captured)
    # Reconstruct sent the rig as it is now: the camera moved 0.1 along X in the origin's frame (its location),
    # which is 0.1 along the backend's X.
    job = Path(r["result"]["job"])
    sent = load_views(job / "views")
    expected_c2w = captured.c2w.double().clone()
    expected_c2w[0, :3, 3] += torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(sent.c2w.double(), expected_c2w, atol=1e-5)
    assert torch.allclose(sent.intrinsics.double(), captured.intrinsics.double(), rtol=1e-5)
    assert json.loads((job / "job.json").read_text())["views"]["path"] == str(job / "views")
    # Its result takes the rig origin's matrix (its mesh turned Z-up), so it lies where the source is.
    assert np.allclose(r["result"]["matrix_world"], expected_origin, atol=1e-5)
    assert r["objects"] == ["GTR Source"]
