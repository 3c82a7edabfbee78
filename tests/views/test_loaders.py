import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gtr_backend.errors import ViewError
from gtr_backend.views import (
    Orbit,
    load_views,
    save_gtr_release,
    save_views,
    zero123pp_poses,
)
from gtr_backend.views.cameras import OPENGL_TO_OPENCV
from gtr_backend.views.sphere import sphere_views


def assert_same_views(a, b, image_tol=1 / 255 + 1e-6):
    assert a.num_views == b.num_views
    assert torch.allclose(a.rgb * a.mask, b.rgb * b.mask, atol=image_tol)
    assert torch.allclose(a.mask, b.mask, atol=image_tol)
    assert torch.allclose(a.intrinsics, b.intrinsics, atol=1e-4)
    assert torch.allclose(a.c2w, b.c2w, atol=1e-5)


def set_view_fields(folder: Path, index: int, **fields: object) -> None:
    """Change fields of view `index` in the folder's cameras.json."""
    path = folder / "cameras.json"
    data = json.loads(path.read_text())
    data["views"][index].update(fields)
    path.write_text(json.dumps(data))


def write_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8)).save(path)


def test_project_folder_round_trip(tmp_path):
    views = sphere_views(size=32)
    json_path = save_views(views, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["camera_axes"] == "opencv" and data["pose"] == "camera_to_world" and data["world_up"] == "+y"
    loaded = load_views(tmp_path)
    assert_same_views(views, loaded)
    assert loaded.names == tuple(f"view_{i:03d}.png" for i in range(4))


def test_project_folder_states_its_conventions(tmp_path):
    """The same cameras written as OpenGL world-to-camera with a FoV load to the same OpenCV c2w."""
    views = sphere_views(size=32, fov_deg=40.0)
    save_views(views, tmp_path)
    data = json.loads((tmp_path / "cameras.json").read_text())
    data.update(camera_axes="opengl", pose="world_to_camera")
    for i, view in enumerate(data["views"]):
        gl_c2w = views.c2w[i].double() @ OPENGL_TO_OPENCV  # the flip is its own inverse
        view["matrix"] = torch.linalg.inv(gl_c2w).tolist()
        for key in ("fx", "fy", "cx", "cy"):
            del view[key]
        view["fov_deg"] = 40.0
    (tmp_path / "cameras.json").write_text(json.dumps(data))
    assert_same_views(views, load_views(tmp_path))


def test_project_folder_mask_files(tmp_path):
    views = sphere_views(size=16)
    save_views(views, tmp_path)
    data = json.loads((tmp_path / "cameras.json").read_text())
    for i, view in enumerate(data["views"]):
        rgb_only = tmp_path / f"rgb_{i}.jpg"
        Image.fromarray((views.on_white()[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(rgb_only)
        write_png(tmp_path / f"mask_{i}.png", views.mask[i, 0].numpy())
        view.update(image=rgb_only.name, mask=f"mask_{i}.png")
    (tmp_path / "cameras.json").write_text(json.dumps(data))
    loaded = load_views(tmp_path)
    assert torch.equal(loaded.mask, views.mask)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(camera_axes="blender"), "camera_axes"),
        (lambda d: d.update(world_up="+z"), "world_up"),
        (lambda d: d.pop("pose"), "missing field 'pose'"),
        (lambda d: d["views"][1].update(matrix=[[1, 0], [0, 1]]), "view 1: 'matrix' must be 4x4"),
        (lambda d: d["views"][2].update(matrix=[[0.0] * 4] * 4), r"view 2 \(view_002.png\): the pose is singular"),
        (lambda d: d["views"][0].update(matrix=[[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 3], [0, 0, 0, 1]]), "not rigid"),
        (lambda d: d["views"][0].update(matrix=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3], [0, 0, 0, 1]]), "looks away"),
        (lambda d: d["views"][3]["matrix"][0].__setitem__(3, math.nan), "NaN or Inf"),
        (lambda d: d["views"][0].pop("fx"), "missing 'fx'"),
        (lambda d: d["views"][0].update(image="nope.png"), "nope.png: image file not found"),
    ],
)
def test_project_folder_errors_name_the_problem(tmp_path, edit, message):
    save_views(sphere_views(size=16), tmp_path)
    data = json.loads((tmp_path / "cameras.json").read_text())
    edit(data)
    (tmp_path / "cameras.json").write_text(json.dumps(data))
    with pytest.raises(ViewError, match=message):
        load_views(tmp_path)


def test_gtr_release_round_trip_and_rescaling(tmp_path):
    views = sphere_views(size=32)
    save_gtr_release(views, tmp_path)
    text = (tmp_path / "cam_002.txt").read_text().splitlines()
    assert text[0] == "extrinsic" and text[5] == "" and text[6].startswith("intrinsic")
    assert_same_views(views, load_views(tmp_path))
    # A camera file stating 64x64 for a 32x32 image: intrinsics are rescaled to the image.
    for i in range(4):
        lines = (tmp_path / f"cam_{i:03d}.txt").read_text().splitlines()
        fx, fy, cx, cy, _, _ = (float(v) for v in lines[7].split())
        lines[7] = f"{2 * fx}, {2 * fy}, {2 * cx}, {2 * cy}, 64, 64"
        (tmp_path / f"cam_{i:03d}.txt").write_text("\n".join(lines))
    assert_same_views(views, load_views(tmp_path))


def test_gtr_release_errors(tmp_path):
    save_gtr_release(sphere_views(size=16), tmp_path)
    (tmp_path / "cam_001.txt").unlink()
    with pytest.raises(ViewError, match="cam_001.txt is missing"):
        load_views(tmp_path)
    save_gtr_release(sphere_views(size=16), tmp_path)
    (tmp_path / "cam_003.txt").write_text("extrinsic\n1 0 0\n")
    with pytest.raises(ViewError, match="cam_003.txt: not a GTR camera file"):
        load_views(tmp_path)
    (tmp_path / "cam_003.txt").write_text("extrinsic\n1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n\nintrinsic\n1 2 3\n")
    with pytest.raises(ViewError, match="six intrinsic numbers"):
        load_views(tmp_path)


def grid_image(cell: int, alpha: bool) -> np.ndarray:
    grid = np.full((3 * cell, 2 * cell, 4 if alpha else 3), 0.5, dtype=np.float32)
    if alpha:
        grid[..., 3] = 0
    yy, xx = np.mgrid[:cell, :cell]
    disc = (xx - cell / 2 + 0.5) ** 2 + (yy - cell / 2 + 0.5) ** 2 < (cell / 4) ** 2
    for i in range(6):
        row, col = divmod(i, 2)
        block = grid[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell]
        block[disc, 0] = i / 5
        block[disc, 1] = 1.0
        block[disc, 2] = 0.0
        if alpha:
            block[disc, 3] = 1
    return grid


def test_zero123pp_grid(tmp_path):
    path = tmp_path / "grid.png"
    write_png(path, grid_image(40, alpha=True))
    views = load_views(path, zero123pp=True)
    assert views.num_views == 6 and views.width == 40
    for i in range(6):  # each view holds its own cell, and the object sits at the image centre
        assert float(views.rgb[i, 0][views.mask[i, 0] > 0.5].mean()) == pytest.approx(i / 5, abs=1 / 255)
    poses = zero123pp_poses()
    t, p = math.radians(100), 0.0  # view 1: polar 100, azimuth 0
    expected = 4 * torch.tensor([math.sin(t) * math.cos(p), math.cos(t), math.sin(t) * math.sin(p)])
    assert torch.allclose(views.c2w[1, :3, 3], expected.float(), atol=1e-5)
    assert torch.allclose(views.c2w, poses.float())
    assert torch.allclose(views.intrinsics[0, 0], torch.tensor(20 / math.tan(math.radians(15))))


def test_zero123pp_without_alpha_needs_a_background(tmp_path):
    path = tmp_path / "grid.png"
    write_png(path, grid_image(40, alpha=False))
    with pytest.raises(ViewError, match=r"cell 0.*no alpha channel.*background="):
        load_views(path, zero123pp=True)
    views = load_views(path, zero123pp=True, background="gray")
    yy, xx = np.mgrid[:40, :40]
    disc = torch.from_numpy((xx - 19.5) ** 2 + (yy - 19.5) ** 2 < 100).float()
    assert torch.equal(views.mask[4, 0], disc)
    write_png(path, grid_image(40, alpha=True)[:100])
    with pytest.raises(ViewError, match="2 cells wide and 3 high"):
        load_views(path, zero123pp=True)


def test_orbit_preset(tmp_path):
    views = sphere_views(size=24, azimuths_deg=(0, 90, 180, 270), elevation_deg=10, distance=3.0, fov_deg=35)
    for i in range(4):
        Image.fromarray(
            (torch.cat([views.rgb[i], views.mask[i]]).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        ).save(tmp_path / f"img_{i}.png")
    orbit = Orbit(elevation_deg=10, fov_deg=35, distance=3.0)
    assert_same_views(views, load_views(tmp_path, orbit=orbit))
    with pytest.raises(ViewError, match="3 azimuths given for 4 images"):
        load_views(tmp_path, orbit=Orbit(azimuths_deg=(0, 90, 180)))
    with pytest.raises(ViewError, match="cameras are unknown.*--orbit"):
        load_views(tmp_path)


def test_image_errors(tmp_path):
    views = sphere_views(size=16)
    save_views(views, tmp_path)
    (tmp_path / "view_001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ViewError, match="view_001.png: cannot read this image"):
        load_views(tmp_path)
    save_views(views, tmp_path)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "view_002.png")
    with pytest.raises(
        ViewError,
        match=r"view_002.png: the image has no alpha channel and no mask was given; "
        r"give it an alpha channel",
    ):
        load_views(tmp_path)
    Image.fromarray(np.full((16, 16, 4), 255, np.uint8)).save(tmp_path / "view_002.png")
    with pytest.raises(ViewError, match="view_002.png: the alpha channel is fully opaque"):
        load_views(tmp_path)
    save_views(views, tmp_path)
    taller = np.zeros((20, 16, 4), np.uint8)
    taller[4:16, 4:12] = 255  # an object with background around it
    Image.fromarray(taller).save(tmp_path / "view_003.png")
    with pytest.raises(ViewError, match="view_003.png is 16x20 but view_000.png is 16x16"):
        load_views(tmp_path)
    with pytest.raises(ViewError, match="no such file or folder"):
        load_views(tmp_path / "missing")
    (tmp_path / "cameras.json").write_text("{not json")
    with pytest.raises(ViewError, match="cameras.json: not valid JSON"):
        load_views(tmp_path)


def test_sixteen_bit_grey_images_keep_their_values(tmp_path):
    """16-bit grey (Pillow mode I;16) as a mask and as a view on black: not read as pure white."""
    views = sphere_views(size=32)
    save_views(views, tmp_path)
    data = json.loads((tmp_path / "cameras.json").read_text())
    for i, view in enumerate(data["views"]):
        mask16 = (views.mask[i, 0].numpy() * 65535).round().astype(np.uint16)
        Image.fromarray(mask16).save(tmp_path / f"mask_{i}.png")
        grey16 = (views.mask[i, 0].numpy() * 0.6 * 65535).round().astype(np.uint16)  # a grey object on black
        Image.fromarray(grey16).save(tmp_path / f"grey_{i}.png")
        assert Image.open(tmp_path / f"grey_{i}.png").mode.startswith("I")
        view.update(image=f"grey_{i}.png", mask=f"mask_{i}.png")
    (tmp_path / "cameras.json").write_text(json.dumps(data))
    loaded = load_views(tmp_path)
    assert torch.allclose(loaded.mask, views.mask, atol=1e-4)
    inside = views.mask[:, :1].expand(-1, 3, -1, -1) > 0.99
    assert torch.allclose(loaded.rgb[inside], torch.tensor(0.6), atol=1e-3)
    data["views"] = [{**view, "mask": None} for view in data["views"]]
    for view in data["views"]:
        del view["mask"]
    (tmp_path / "cameras.json").write_text(json.dumps(data))
    assert torch.equal(load_views(tmp_path, background="black").mask, (views.mask > 0.01).float())


def test_large_views_are_downsampled_on_load_with_their_intrinsics(tmp_path):
    views = sphere_views(size=64)
    save_views(views, tmp_path)
    data = json.loads((tmp_path / "cameras.json").read_text())
    side = 2600  # over the 2048 px read limit
    for i, view in enumerate(data["views"]):
        rgba = torch.cat([views.rgb[i], views.mask[i]]).permute(1, 2, 0).mul(255).round().byte().numpy()
        Image.fromarray(rgba).resize((side, side), Image.Resampling.NEAREST).save(tmp_path / f"big_{i}.png")
        scale = side / 64
        view.update(image=f"big_{i}.png", fx=view["fx"] * scale, fy=view["fy"] * scale)
        view.update(cx=view["cx"] * scale, cy=view["cy"] * scale)
    (tmp_path / "cameras.json").write_text(json.dumps(data))
    loaded = load_views(tmp_path)
    assert (loaded.height, loaded.width) == (2048, 2048)
    assert torch.allclose(loaded.intrinsics, views.intrinsics * 2048 / 64, rtol=1e-5)
    # The same object in the same place: back at 64 px the masks agree with the originals.
    small, silhouette = loaded.resized(64).foreground(), views.foreground()
    assert float((small & silhouette).sum() / (small | silhouette).sum()) > 0.97


def png_claiming_size(path: Path, width: int, height: int) -> None:
    """A small PNG whose header claims `width` x `height` pixels (a decompression bomb as far as the header goes)."""
    import struct
    import zlib

    Image.fromarray(np.zeros((16, 16, 4), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        (40000, 40000, "too large"),  # over Pillow's own bomb limit
        (10000, 9500, "too large"),  # over the project's limit, under Pillow's error
        (1, 1, "at least 16 px"),
        (4000, 8, "at least 16 px"),
    ],
)
def test_absurd_image_sizes_are_refused_before_decoding(tmp_path, width, height, message):
    save_views(sphere_views(size=16), tmp_path)
    png_claiming_size(tmp_path / "view_001.png", width, height)
    with pytest.raises(ViewError, match=f"view_001.png: .*{message}"):
        load_views(tmp_path)


@pytest.mark.parametrize("fov", ["wide", True, [40], 0, 200])
def test_a_field_of_view_that_is_not_a_number_is_named(tmp_path, fov):
    save_views(sphere_views(size=16), tmp_path)
    set_view_fields(tmp_path, 2, fov_deg=fov)
    with pytest.raises(ViewError, match="view 2: fov_deg must be a number"):
        load_views(tmp_path)


def test_fov_null_falls_back_to_pixel_intrinsics(tmp_path):
    views = sphere_views(size=16)
    save_views(views, tmp_path)
    set_view_fields(tmp_path, 2, fov_deg=None)
    assert_same_views(views, load_views(tmp_path))


@pytest.mark.parametrize("size", ["0 16", "16 0", "-16 16", "16.5 16"])
def test_a_camera_file_with_no_image_size_is_named(tmp_path, size):
    save_gtr_release(sphere_views(size=16), tmp_path)
    lines = (tmp_path / "cam_001.txt").read_text().splitlines()
    lines[7] = " ".join(lines[7].split()[:4]) + " " + size
    (tmp_path / "cam_001.txt").write_text("\n".join(lines))
    with pytest.raises(ViewError, match="cam_001.txt: height and width"):
        load_views(tmp_path)


def test_a_camera_inside_the_object_box_is_named(tmp_path):
    save_views(sphere_views(size=16), tmp_path)
    set_view_fields(tmp_path, 1, matrix=[[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0.5], [0, 0, 0, 1]])
    with pytest.raises(ViewError, match=r"view 1 \(view_001.png\): the camera sits at .* inside the object's box"):
        load_views(tmp_path)


def test_an_image_that_is_a_folder_a_device_or_a_pipe_is_named_as_such(tmp_path):
    """Not "file not found" (it is there), and a pipe is never opened (reading it would wait forever)."""
    save_views(sphere_views(size=16), tmp_path)
    cases = {
        "folder": (lambda p: p.mkdir(), "view_001.png is a folder; give the image file itself"),
        "device": (lambda p: p.symlink_to("/dev/null"), "view_001.png is a device, a pipe or a socket, not a file"),
        "pipe": (os.mkfifo, "view_001.png is a device, a pipe or a socket, not a file"),
        "missing": (lambda p: None, "view_001.png: image file not found"),
    }
    for kind, (make, message) in cases.items():
        image = tmp_path / "view_001.png"
        image.unlink()
        make(image)
        with pytest.raises(ViewError, match=message):
            load_views(tmp_path)
        if image.is_dir() and not image.is_symlink():
            image.rmdir()
        else:
            image.unlink(missing_ok=True)
        save_views(sphere_views(size=16), tmp_path)
        assert load_views(tmp_path).num_views == 4, kind
    (tmp_path / "cameras.json").unlink()
    (tmp_path / "cameras.json").mkdir()
    with pytest.raises(ViewError, match="cameras.json is a folder; give the camera file itself"):
        load_views(tmp_path)


def test_a_path_with_a_nul_character_is_named(tmp_path):
    with pytest.raises(ViewError, match="the path contains a NUL character") as caught:
        load_views(str(tmp_path / "views\0"))
    assert "\0" not in str(caught.value)  # shown escaped, not as a raw NUL


def test_depth_maps_and_held_out_views_round_trip_and_bad_depth_files_are_named(tmp_path):
    views = sphere_views(size=32)
    depth = torch.where(views.mask > 0.5, torch.full_like(views.mask, 2.5), torch.zeros_like(views.mask))
    marked = type(views).from_tensors(
        views.rgb, views.mask, views.intrinsics, views.c2w, views.names, depth, [0, 0, 0, 1]
    )
    save_views(marked, tmp_path)
    loaded = load_views(tmp_path)
    assert loaded.depth is not None and torch.allclose(loaded.depth, depth)
    assert loaded.held_out == (False, False, False, True)
    fit, held = loaded.split_held_out()
    assert fit.num_views == 3 and held is not None and held.num_views == 1 and not any(fit.held_out)
    assert torch.equal(held.c2w[0], loaded.c2w[3]) and fit.depth is not None and fit.depth.shape[0] == 3
    # Resampled views keep depth only where every pixel under them knew it.
    small = loaded.resized(16)
    assert small.depth is not None and small.depth.shape == (4, 1, 16, 16)
    assert set(small.depth.unique().tolist()) <= {0.0, 2.5}
    name = json.loads((tmp_path / "cameras.json").read_text())["views"][0]["depth"]
    bad = {
        "object array": np.array([{"a": 1}] * 4, dtype=object).reshape(2, 2),
        "negative": -np.ones((32, 32), np.float32),
        "three-dimensional": np.ones((2, 32, 32), np.float32),
    }
    for what, array in bad.items():
        np.save(tmp_path / name, array, allow_pickle=True)
        with pytest.raises(ViewError, match=name) as error:
            load_views(tmp_path)
        assert "\n" not in str(error.value), what
    np.save(tmp_path / name, np.ones((32, 32), np.float32))
    set_view_fields(tmp_path, 1, held_out="yes")
    with pytest.raises(ViewError, match="'held_out' must be true or false"):
        load_views(tmp_path)
