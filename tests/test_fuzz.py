"""Property-based and fuzz tests (Hypothesis) of what reads untrusted input: the view loaders (`cameras.json`,
`cam_NNN.txt`, images of every Pillow mode and size, random bytes, views keyed from any background, paths
that are folders, devices, pipes or hold a NUL), the check that cameras go around the object, the backend's
request protocol (random lines, random JSON, random field types, ids and cancel targets of any type) and the
mesh Bake to Active sends it (arrays of any type and shape).

The property everywhere: success, or one plain `GTRError` (one line, no traceback), never a hang, never a
write outside the job folder. The number of examples is bounded by the Hypothesis profile: "ci" (the default
here, FUZZ_EXAMPLES per test) or "long" (HYPOTHESIS_PROFILE=long, 20x more). docs/RESULTS.md reports how many
cases ran.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gtr_backend.contract import BAKE_TARGET, REQUESTS, camera_spread_warning, check_request
from gtr_backend.errors import GTRError, ViewError
from gtr_backend.server import read_bake_target, serve
from gtr_backend.views import ViewSet, load_views, orbit_poses, save_gtr_release, save_views
from gtr_backend.views.images import BACKGROUND_TOLERANCE, mask_problem, read_view
from gtr_backend.views.sphere import sphere_views

FUZZ_EXAMPLES = 300
settings.register_profile(
    "ci", max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("long", max_examples=20 * FUZZ_EXAMPLES, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


def assert_one_line(error: GTRError) -> None:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message


def loads_or_explains(path: Path, **options: Any) -> None:
    """The property of every loader: a valid ViewSet, or a one-line GTRError."""
    try:
        views = load_views(path, **options)
    except GTRError as error:
        assert_one_line(error)
    else:
        assert isinstance(views, ViewSet) and views.num_views >= 1


@pytest.fixture(scope="module")
def view_folders(tmp_path_factory):
    """A valid project folder and a valid released-format folder of the same 4 views (16x16)."""
    root = tmp_path_factory.mktemp("fuzz-views")
    views = sphere_views(size=16)
    save_views(views, root / "project")
    save_gtr_release(views, root / "release")
    return root


def fresh_copy(folder: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix="fuzz-")) / folder.name
    shutil.copytree(folder, target)
    return target


# ---------------------------------------------------------------------------------------------------------------
# View loaders.


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) into a JSON value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cameras_json_with_any_field_replaced(view_folders, data):
    folder = fresh_copy(view_folders / "project")
    try:
        cameras = json.loads((folder / "cameras.json").read_text())
        for _ in range(data.draw(st.integers(1, 3), label="edits")):
            path = data.draw(st.sampled_from(_paths(cameras)), label="path")
            replacement = data.draw(json_values, label="value")
            if not path:
                cameras = replacement
                continue
            parent = cameras
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = replacement
        (folder / "cameras.json").write_text(json.dumps(cameras))
        loads_or_explains(folder)
    finally:
        shutil.rmtree(folder.parent)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="0123456789 .,-+eEnaif\nxtrinsic", max_size=300), index=st.integers(0, 3))
def test_camera_text_files_of_any_content(view_folders, text, index):
    folder = fresh_copy(view_folders / "release")
    try:
        (folder / f"cam_{index:03d}.txt").write_text(text)
        loads_or_explains(folder)
    finally:
        shutil.rmtree(folder.parent)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_camera_files_with_one_number_changed(view_folders, data):
    folder = fresh_copy(view_folders / "release")
    try:
        camera = folder / "cam_001.txt"
        lines = camera.read_text().splitlines()
        row = data.draw(st.sampled_from([1, 2, 3, 4, 7]), label="row")
        numbers = lines[row].split()
        column = data.draw(st.integers(0, len(numbers) - 1), label="column")
        numbers[column] = repr(data.draw(st.floats() | st.integers(-(10**6), 10**6), label="number"))
        lines[row] = " ".join(numbers)
        camera.write_text("\n".join(lines))
        loads_or_explains(folder)
    finally:
        shutil.rmtree(folder.parent)


# Pillow modes and the formats that store them.
MODES = {
    "1": "PNG",
    "L": "PNG",
    "LA": "PNG",
    "P": "PNG",
    "RGB": "PNG",
    "RGBA": "PNG",
    "I;16": "PNG",
    "I": "TIFF",
    "F": "TIFF",
    "CMYK": "JPEG",
    "YCbCr": "JPEG",
    "LAB": "TIFF",
}


@st.composite
def image_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(what it is, the bytes of an image file): any mode and size, random pixels, or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return "random bytes", draw(st.binary(max_size=2000))
    mode = draw(st.sampled_from(sorted(MODES)))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    size = len(Image.new(mode, (width, height)).tobytes())
    seed = draw(st.integers(0, 2**32 - 1))
    image = Image.frombytes(mode, (width, height), np.random.default_rng(seed).bytes(size))
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=MODES[mode])
    except (OSError, ValueError):  # a mode this Pillow cannot store that way: store it as TIFF
        buffer = io.BytesIO()
        image.save(buffer, format="TIFF")
    data = buffer.getvalue()
    if draw(st.booleans()):  # sometimes cut short, as a broken download would be
        data = data[: draw(st.integers(0, len(data)))]
    return f"{mode} {width}x{height}", data


@given(image=image_files(), background=st.sampled_from([None, "white", "black", (0.5, 0.5, 0.5)]))
def test_images_of_any_mode_and_size(image, background):
    _, data = image
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "view.png"
        path.write_bytes(data)
        try:
            rgb, mask = read_view(path, None, background)
        except GTRError as error:
            assert_one_line(error)
        else:
            assert rgb.shape[0] == 3 and mask.shape[0] == 1 and rgb.shape[1:] == mask.shape[1:]
            assert float(rgb.min()) >= 0 and float(rgb.max()) <= 1 and 0 <= float(mask.min()) <= 1


@st.composite
def keyed_views(draw: st.DrawFn) -> tuple[np.ndarray, tuple[float, float, float], float]:
    """(8-bit RGB image of a disc on a background, the background's colour, how uneven the background is (the
    noise's standard deviation, 0: plain)): any size, position, colours and noise."""
    width, height = draw(st.integers(16, 96), label="width"), draw(st.integers(16, 96), label="height")
    colour = draw(st.tuples(*[st.sampled_from([0.0, 0.5, 1.0])] * 3), label="background")
    noise = draw(st.sampled_from([0.0, 0.0, 1 / 255, 3 / 255, 10 / 255, 0.5]), label="noise")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    y, x = np.mgrid[:height, :width] + 0.5
    cx, cy = draw(st.floats(0.3, 0.7)) * width, draw(st.floats(0.3, 0.7)) * height
    radius = draw(st.floats(0.1, 0.25)) * min(width, height) + 1.0
    inside = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
    background = np.clip(np.asarray(colour) + rng.normal(0, noise, (height, width, 3)), 0, 1)
    image = np.where(inside[..., None], 1.0 - np.asarray(colour) * 0.8, background)  # the disc: another colour
    return (image * 255).round().astype(np.uint8), colour, noise


@given(view=keyed_views(), key=st.sampled_from(["own", "white", "gray", "black"]))
def test_a_view_keyed_from_any_background_loads_or_says_why(view, key):
    """Keyed by the background's own colour on a plain background: always accepted, the disc found. Otherwise:
    a mask that passes every check, or one line that says what to give instead."""
    image, colour, noise = view
    background = colour if key == "own" else key
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "view.png"
        Image.fromarray(image).save(path)
        try:
            _, mask = read_view(path, None, background)
        except ViewError as error:
            assert_one_line(error)
            assert not (key == "own" and noise * 3 < BACKGROUND_TOLERANCE), error  # a plain background is found
            assert "alpha" in str(error) or "mask image" in str(error)
        else:
            assert mask_problem(mask[0].numpy(), background) is None
            if key == "own" and noise * 3 < BACKGROUND_TOLERANCE:
                assert float(mask.mean()) < 0.5  # the disc, not the frame


@given(kind=st.sampled_from(["folder", "pipe", "device", "dangling link", "missing", "nul", "empty"]))
def test_an_image_path_of_any_kind_is_read_or_named_without_waiting(kind):
    """Never "file not found" for a file that is there, never a read from a pipe (it would wait forever)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "view.png"
        if kind == "folder":
            path.mkdir()
        elif kind == "pipe":
            os.mkfifo(path)
        elif kind == "device":
            path.symlink_to("/dev/null")
        elif kind == "dangling link":
            path.symlink_to(Path(folder) / "gone.png")
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "nul":
            path = Path(folder) / "view\0.png"
        with pytest.raises(ViewError) as caught:
            read_view(path, None, "white")
        assert_one_line(caught.value)
        assert ("not found" in str(caught.value)) == (kind in ("missing", "dangling link")), caught.value
        assert "\0" not in str(caught.value)


# ---------------------------------------------------------------------------------------------------------------
# Cameras around the object.

finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(poses=st.lists(st.lists(st.lists(finite, min_size=4, max_size=4), min_size=4, max_size=4), max_size=8))
def test_camera_spread_of_any_poses_is_a_sentence_or_none(poses):
    warning = camera_spread_warning(poses)
    assert warning is None or (warning and "\n" not in warning)


@given(
    start=st.floats(0, 360),
    count=st.integers(3, 8),
    jitter=st.floats(0, 0.24),
    elevation=st.floats(-60, 60),
    distance=st.floats(1.8, 5.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_cameras_around_the_object_get_no_warning_and_cameras_at_one_place_do(
    start, count, jitter, elevation, distance, seed
):
    rng = np.random.default_rng(seed)
    steps = 360.0 / count
    azimuths = [start + steps * (i + jitter * rng.uniform(-1, 1)) for i in range(count)]  # gaps under 1.5 steps
    assert camera_spread_warning(orbit_poses(azimuths, elevation, distance).tolist()) is None
    close = [start + rng.uniform(-5, 5) for _ in range(count)]
    warning = camera_spread_warning(orbit_poses(close, elevation, distance).tolist())
    assert warning is not None and "nearly the same direction" in warning


# ---------------------------------------------------------------------------------------------------------------
# The backend's request protocol.

FIELDS = sorted({name for fields in REQUESTS.values() for name in fields} | {"id", "protocol", "op"})
ids = st.integers(-2, 2) | st.sampled_from(["a", "b", "ping", "a\0"]) | json_values  # repeats are likely


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A request of any op, with an id (and a cancel's target) of any type, and fields of any kind."""
    op = draw(st.sampled_from(sorted(REQUESTS)))
    message = {"op": op, "id": draw(ids), **({"target": draw(ids)} if op == "cancel" else {})}
    extra = draw(
        st.dictionaries(
            st.sampled_from(FIELDS) | st.text(max_size=8),
            json_values | st.text(alphabet="./~_-abcjob\0", max_size=20),
            max_size=6,
        )
    )
    return {**message, **extra}


lines = st.one_of(
    requests().map(json.dumps),
    json_values.map(json.dumps),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=200),
)


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=settings.default.max_examples // 3)
@given(batch=st.lists(lines, min_size=1, max_size=8))
def test_the_server_answers_any_lines_in_one_line_and_writes_nowhere_else(batch, monkeypatch):
    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise GTRError("no model in this test")

    monkeypatch.setattr("gtr_backend.weights.load_model", no_model)  # a `load` would read the bundled weights
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        jobs = work / "jobs"
        jobs.mkdir()
        monkeypatch.chdir(work)  # relative job paths resolve here, where a stray write would show
        text = "".join(line.replace("\n", " ").replace("\r", " ") + "\n" for line in batch)
        out = io.StringIO()
        done = threading.Event()
        thread = threading.Thread(target=lambda: (serve(io.StringIO(text), out, jobs), done.set()), daemon=True)
        thread.start()
        assert done.wait(60), "the server hung"
        replies = [json.loads(line) for line in out.getvalue().splitlines()]
        sent = {json.dumps(m.get("id")) for m in map(_json_or_none, batch) if isinstance(m, dict)}
        for reply in replies:
            assert isinstance(reply, dict) and reply.get("type") in ("result", "error", "progress"), reply
            assert reply["id"] is None or json.dumps(reply["id"]) in sent, reply  # no reply names another id
            if reply["type"] == "error":
                message = reply["message"]
                assert "\n" not in message and "internal error" not in message, message
        assert {p.split(os.sep)[0] for p in listing(work)} <= {"jobs"}  # nothing written outside the jobs root


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line.replace("\n", " ").replace("\r", " "))
    except ValueError:
        return None


def allowed_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool) and "\0" not in str(value)


@given(rid=ids, target=ids)
def test_an_id_or_a_cancel_target_is_any_integer_or_string(rid, target):
    """Any id the protocol allows is a cancel target too: an integer or a string (without a NUL character)."""
    allowed = allowed_id(target) and (rid is None or allowed_id(rid))
    try:
        check_request({"op": "cancel", "id": rid, "target": target})
    except GTRError as error:
        assert_one_line(error)
        assert not allowed, error
    else:
        assert allowed


# ---------------------------------------------------------------------------------------------------------------
# The mesh Bake to Active bakes onto.

DTYPES = ["int32", "int64", "uint8", "float32", "float64", "complex64", "bool", "<U2"]


@st.composite
def bake_targets(draw: st.DrawFn) -> dict[str, np.ndarray]:
    vertices = draw(st.integers(0, 6), label="vertices")
    arrays = {}
    for name, shape in (("vertices", (vertices, 3)), ("faces", (draw(st.integers(0, 4)), 3)), ("uv", (vertices, 2))):
        if draw(st.integers(0, 5)) == 0:
            shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))  # any shape
        dtype = draw(st.sampled_from(DTYPES), label=f"{name} dtype")
        values = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(-2, vertices + 1, shape)
        arrays[name] = values.astype(dtype)
    return arrays


@given(arrays=bake_targets())
def test_a_bake_target_of_any_arrays_is_read_exactly_or_refused_in_one_line(arrays):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / BAKE_TARGET
        np.savez(path, **arrays)
        try:
            mesh = read_bake_target(path)
        except GTRError as error:
            assert_one_line(error)
        else:  # only vertex indices that are integers, taken as they are: nothing rounded or dropped
            assert arrays["faces"].dtype.kind in "iu" and arrays["vertices"].dtype.kind in "iuf"
            assert np.array_equal(mesh.faces.numpy(), arrays["faces"].astype(np.int64))
