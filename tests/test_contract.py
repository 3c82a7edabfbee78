"""The add-on and the backend agree through one torch-free module, `gtr_backend.contract`: the add-on imports
it from the bundled backend and keeps no copies, and the backend's own modules read their conventions from
it. A change on one side alone fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from gtr_backend import contract
from gtr_backend.views import Orbit, loaders
from gtr_lab.evaluation import protocol

ROOT = Path(__file__).resolve().parent.parent


def contract_strings() -> dict[str, str]:
    """Every string the contract defines (file names, format ids, suffixes), by the constant that holds it."""
    found = {}
    for name in dir(contract):
        value = getattr(contract, name)
        if name.isupper() and isinstance(value, str):
            found[value] = name
    return found


def literals(path: Path) -> list[tuple[int, object]]:
    """(line, value) of the constants in a module's code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in docstrings
    ]


def test_the_addon_keeps_no_copy_of_the_contract():
    strings = contract_strings()
    assert {"cameras.json", "gtr-views/1", "mesh.npz", "texture.png"} <= set(strings)
    copies = []
    for path in sorted((ROOT / "blender_addon").rglob("*.py")):
        where = path.relative_to(ROOT)
        for line, value in literals(path):
            if isinstance(value, str) and value in strings:
                copies.append(f"{where}:{line}: {value!r} is contract.{strings[value]}")
            if value == contract.ORBIT_DISTANCE:
                copies.append(f"{where}:{line}: {value!r} is contract.ORBIT_DISTANCE")
        for node in ast.walk(ast.parse(path.read_text())):  # a list of image suffixes of its own
            if isinstance(node, ast.Set | ast.Tuple | ast.List):
                suffixes = [
                    e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in contract.IMAGE_SUFFIXES
                ]
                if len(suffixes) > 1:
                    copies.append(f"{where}:{node.lineno}: image suffixes {suffixes} copy contract.IMAGE_SUFFIXES")
    assert not copies, "\n".join(copies)


def test_the_addon_reads_the_backends_contract():
    from blender_addon.backend import client
    from blender_addon.contract import contract as seen_by_addon

    assert seen_by_addon is contract
    assert client.PROTOCOL == contract.PROTOCOL


def test_the_backend_reads_its_conventions_from_the_contract():
    assert loaders.IMAGE_SUFFIXES is contract.IMAGE_SUFFIXES and loaders.CAMERAS_JSON == contract.CAMERAS_JSON
    assert loaders.PROJECT_FORMAT == contract.VIEWS_FORMAT
    assert (Orbit.elevation_deg, Orbit.fov_deg, Orbit.distance) == (
        contract.ORBIT_ELEVATION_DEG,
        contract.ORBIT_FOV_DEG,
        contract.ORBIT_DISTANCE,
    )
    assert protocol.VIEW_RADIUS == contract.VIEW_RADIUS
    assert protocol.EvalProtocol().input_azimuths_deg == contract.ORBIT_AZIMUTHS_DEG


def test_the_working_sphere_is_in_view_at_the_orbit_defaults():
    """The contract's own numbers agree: a sphere of VIEW_RADIUS at the origin fits the default cameras' view."""
    import math

    half_angle = math.degrees(math.asin(contract.VIEW_RADIUS / contract.ORBIT_DISTANCE))
    assert half_angle < contract.ORBIT_FOV_DEG / 2


def test_the_contract_imports_without_torch():
    code = "import sys, gtr_backend.contract; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_every_request_has_its_reply_defined_once():
    """Every request but `cancel` (which has no reply) has its result's fields in the contract, and the check
    names what is missing or unknown; the fidelity as it travels has the score's fields."""
    import dataclasses

    import pytest

    from gtr_backend.errors import GTRError
    from gtr_backend.fidelity import Fidelity

    assert set(contract.REPLIES) == set(contract.REQUESTS) - {"cancel"}
    reply = {"id": 3, "type": "result", "seconds": 0.1, "unloaded": 1}  # the envelope is not the reply's
    assert contract.check_reply("unload", reply) is reply
    with pytest.raises(GTRError, match=r"reply to 'unload' lacks 'unloaded'"):
        contract.check_reply("unload", {"id": 3, "type": "result"})
    with pytest.raises(GTRError, match=r"reply to 'ping' has unknown 'psnr_after'"):
        contract.check_reply("ping", {"busy": False, "psnr_after": 30.0})
    refine = {"files": {}, "psnr_before": 30.0, "psnr_after": 30.0, "improved": False}  # fidelity only if improved
    assert contract.check_reply("refine", refine) is refine
    assert set(contract.FidelityFields.__annotations__) == {f.name for f in dataclasses.fields(Fidelity)}


def test_the_addon_reads_replies_by_the_contracts_fields():
    """Every field an operator reads from a reply (`reply["name"]`) is a field of the reply it casts to."""
    found = []
    for path in sorted((ROOT / "blender_addon" / "operators").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "cast" and node.args):
                continue
            kind = node.args[0]
            if isinstance(kind, ast.Constant) and str(kind.value).startswith("contract."):
                found.append((path.name, getattr(contract, str(kind.value).split(".", 1)[1])))
    assert {kind for _, kind in found} >= {
        contract.HelloReply,
        contract.CamerasReply,
        contract.RefineReply,
        contract.UnloadReply,
        contract.BakeToReply,
    }
    text = (ROOT / "blender_addon" / "operators" / "base.py").read_text()
    assert "contract.check_reply(self.job.op, message)" in text  # checked on arrival, before any operator reads it


def test_cameras_json_has_one_writer_and_one_reader(tmp_path):
    """contract.write_cameras writes what contract.read_cameras reads (the backend's save_views, the add-on's rig
    and capture all write through it); the document's conventions are spelled nowhere else."""
    views = [{"image": "a.png", "fx": 100.0, "fy": 100.0, "cx": 64.0, "cy": 64.0, "matrix": [[1.0, 0, 0, 0]] * 4}]
    path = contract.write_cameras(tmp_path, views)
    assert path == tmp_path / contract.CAMERAS_JSON
    read = contract.read_cameras(tmp_path)
    assert (read.path, read.camera_axes, read.pose, read.views) == (path, "opencv", "camera_to_world", views)
    spelled = [
        str(p.relative_to(ROOT))
        for folder in ("gtr_backend", "gtr_lab", "blender_addon")
        for p in (ROOT / folder).rglob("*.py")
        if p.name != "contract.py" and any(value == "world_up" for _, value in literals(p))
    ]
    assert spelled == []


def test_a_cameras_json_with_a_bad_convention_is_named(tmp_path):
    import json

    import pytest

    from gtr_backend.errors import ViewError

    path = contract.write_cameras(tmp_path, [{"image": "a.png"}])
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "world_up": "+z"}))
    with pytest.raises(ViewError, match=r"cameras.json: field 'world_up' is '\+z'; allowed: '\+y'"):
        contract.read_cameras(path)
    path.write_text(json.dumps({**document, "views": [3]}))
    with pytest.raises(ViewError, match=r"view 0: each view must be an object"):
        contract.read_cameras(path)


def test_the_bundled_backend_is_found_in_one_place():
    """The add-on finds gtr_backend through blender_addon.contract alone: no other module looks for it."""
    from blender_addon import contract as addon_contract

    assert addon_contract.backend_source() == ROOT  # the repository layout
    assert addon_contract.backend_module("server").Session is not None
    lookers = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "blender_addon").rglob("*.py")
        if p.name != "contract.py" and '"gtr_backend"' in p.read_text()
    ]
    assert lookers == []


def test_a_request_number_that_is_not_finite_is_refused_by_name():
    import math

    from gtr_backend.contract import check_request
    from gtr_backend.errors import GTRError

    for orbit in ({"azimuths": [math.inf, 0.0, 90.0, 180.0]}, {"elevation": math.nan}):
        request = {"op": "reconstruct", "views": {"path": "x", "orbit": orbit}, "job": "j"}
        with pytest.raises(GTRError, match="must be finite"):
            check_request(request)


def test_a_job_manifest_is_strict_json_whatever_its_scores():
    import json
    import math

    text = contract.job_manifest_text({"fidelity": {"psnr": math.nan, "mask_iou_per_view": [1.0, math.inf]}})  # type: ignore[typeddict-item]

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    assert json.loads(text, parse_constant=refuse) == {"fidelity": {"psnr": None, "mask_iou_per_view": [1.0, None]}}
