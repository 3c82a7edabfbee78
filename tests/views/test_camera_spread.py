"""Cameras that do not go around the object (all at one pose, all on one side, all from above) load, with a
warning: printed by `gtr views` and `gtr reconstruct`, sent with the backend's `cameras` and `reconstruct`
replies for the add-on to show. Views that go around it (orbits, the Zero123++ rig, the example, the
evaluation protocol) get none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gtr_backend.cli import main
from gtr_backend.contract import camera_spread_warning
from gtr_backend.errors import GTRError
from gtr_backend.server import Session, run_request
from gtr_backend.views import load_views, orbit_poses, zero123pp_poses
from gtr_lab.evaluation.protocol import EvalProtocol

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "toy"


def poses(azimuths: tuple[float, ...], elevation: float = 20.0) -> list:
    return orbit_poses(azimuths, elevation, 2.7).tolist()


@pytest.mark.parametrize(
    "cameras",
    [
        poses((0, 90, 180, 270)),
        poses((0, 120, 240)),
        poses((0, 90, 180, 270), elevation=-50),
        poses((15, 100, 170, 260, 330)),  # jittered, as hand-held photos are
        zero123pp_poses().tolist(),
        EvalProtocol().input_views_cameras()[1].tolist(),
        load_views(EXAMPLE).c2w.tolist(),
        poses((0,)),  # one view: nothing to compare
    ],
    ids=["orbit", "three", "from-below", "jittered", "zero123pp", "evaluation", "example", "one"],
)
def test_views_around_the_object_get_no_warning(cameras):
    assert camera_spread_warning(cameras) is None


@pytest.mark.parametrize(
    ("cameras", "words"),
    [
        (poses((30, 30, 30, 30)), "the 4 cameras look at the object from nearly the same direction (at most 0 degrees"),
        (poses((0, 5, 10, 15)), "nearly the same direction (at most 14 degrees"),
        (poses((-60, -20, 20, 60)), "all lie within 120 degrees, on one side of it, so its far side is not seen"),
        (poses((0, 90, 180, 270), elevation=80), "from straight above or below"),
    ],
    ids=["one-pose", "close", "one-side", "above"],
)
def test_views_that_do_not_go_around_the_object_are_named(cameras, words):
    warning = camera_spread_warning(cameras)
    assert warning is not None and words in warning and "\n" not in warning


@pytest.fixture
def one_pose(tmp_path: Path) -> Path:
    """The example with every camera at the first one's pose (what a copy-paste error in cameras.json gives)."""
    folder = tmp_path / "one-pose"
    shutil.copytree(EXAMPLE, folder)
    cameras = json.loads((folder / "cameras.json").read_text())
    for view in cameras["views"]:
        view["matrix"] = cameras["views"][0]["matrix"]
    (folder / "cameras.json").write_text(json.dumps(cameras))
    return folder


def test_the_command_line_warns_before_the_work(one_pose, capsys, monkeypatch):
    assert main(["views", str(EXAMPLE)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["views", str(one_pose)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"gtr: warning: {one_pose}: the 4 cameras look at the object from nearly the same direction")

    def stop(*args: object, **kwargs: object) -> None:
        raise GTRError("stopped here")

    monkeypatch.setattr("gtr_backend.reconstruction.reconstruct", stop)
    assert main(["reconstruct", str(one_pose), "-o", str(one_pose / "out.glb"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.index("nearly the same direction") < err.index("stopped here")


def test_the_backend_sends_the_warning_with_the_cameras(one_pose, tmp_path):
    """What Import Views builds its rig from carries the warning, for the panel to show."""
    session = Session(tmp_path / "jobs")
    for rid, (views, expected) in enumerate(((EXAMPLE, []), (one_pose, ["nearly the same direction"])), start=1):
        replies: list[dict] = []
        with open(tmp_path / "log", "w") as log:
            request = {"op": "cameras", "views": {"path": str(views)}, "folder": str(tmp_path / "jobs" / str(rid))}
            run_request(session, {"id": rid, **request}, replies.append, lambda: False, log)
        assert replies[-1]["type"] == "result", replies[-1]
        warnings = replies[-1]["warnings"]
        assert len(warnings) == len(expected) and all(w in text for w, text in zip(expected, warnings, strict=True))
