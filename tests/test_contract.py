"""The add-on and the backend agree through one torch-free module, `gtr_backend.contract`: the add-on imports
it from the bundled backend and keeps no copies, and the backend's own modules read their conventions from
it. A change on one side alone fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
