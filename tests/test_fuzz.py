"""Property-based and fuzz tests (Hypothesis) of what reads untrusted input: the view loaders (`cameras.json`,
`cam_NNN.txt`, images of every Pillow mode and size, random bytes) and the backend's request protocol (random
lines, random JSON, random field types).

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

from gtr_backend.contract import REQUESTS
from gtr_backend.errors import GTRError
from gtr_backend.server import serve
from gtr_backend.synthetic import sphere_views
from gtr_backend.views import ViewSet, load_views, save_gtr_release, save_views
from gtr_backend.views.images import read_view

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


# ---------------------------------------------------------------------------------------------------------------
# The backend's request protocol.

FIELDS = sorted({name for fields in REQUESTS.values() for name in fields} | {"id", "protocol", "op"})
requests = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8),
    json_values | st.text(alphabet="./~_-abcjob", max_size=20),
    max_size=6,
).flatmap(lambda extra: st.sampled_from(sorted(REQUESTS)).map(lambda op: {"op": op, **extra}))
lines = st.one_of(
    requests.map(json.dumps),
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
        for reply in replies:
            assert isinstance(reply, dict) and reply.get("type") in ("result", "error", "progress"), reply
            if reply["type"] == "error":
                message = reply["message"]
                assert "\n" not in message and "internal error" not in message, message
        assert {p.split(os.sep)[0] for p in listing(work)} <= {"jobs"}  # nothing written outside the jobs root
