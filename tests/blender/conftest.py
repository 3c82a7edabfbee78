"""Blender tests: each runs a script from scripts/ in a fresh Python that imports the real `bpy`, headless, with
Blender's user, config and cache folders inside a temporary folder.

Blender 5.0 (`bpy==5.0.1`, this environment's Python) runs every test; Blender 4.2 LTS (`bpy==4.2.23`, a Python
of its own at `.venv-bpy42/bin/python` or $GTR_BPY_LTS_PYTHON, which `scripts/test.sh` sets up) runs the tests
that take the `bpy_python` fixture: install, enable, capture, an end-to-end reconstruct and refine with the
separate-Python backend, disable. The backend itself always runs in this environment's Python (it has torch).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"
ROOT = Path(__file__).resolve().parents[2]


def blender_pythons() -> dict[str, str]:
    """Blender version -> a Python that imports that `bpy`."""
    found = {"5.0": sys.executable}
    lts = Path(os.environ.get("GTR_BPY_LTS_PYTHON", ROOT / ".venv-bpy42" / "bin" / "python"))
    if lts.is_file():
        found["4.2 LTS"] = str(lts)
    elif os.environ.get("GTR_REQUIRE_BPY_LTS") == "1":
        raise RuntimeError(f"bpy 4.2 LTS is required for this run but {lts} does not exist")
    return found


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bpy_python" in metafunc.fixturenames:
        pythons = blender_pythons()
        metafunc.parametrize("bpy_python", list(pythons.values()), ids=list(pythons))


if importlib.util.find_spec("bpy") is None:
    pytest.skip("bpy (Blender as a module, Python 3.11) is not installed", allow_module_level=True)


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT))
    try:
        import build
    finally:
        sys.path.remove(str(ROOT))
    return build.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def blender(tmp_path: Path):
    """blender(script, *args) -> the dict the script printed after RESULT; fails with its output if it crashed."""

    def run(script: str, *args: str, timeout: float = 600, python: str = sys.executable) -> dict:
        home = tmp_path / "blender-home"
        home.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "BLENDER_USER_RESOURCES": str(home),
                "BLENDER_USER_CONFIG": str(home / "config"),
                "BLENDER_USER_SCRIPTS": str(home / "scripts"),
                "BLENDER_USER_EXTENSIONS": str(home / "extensions"),
                "BLENDER_USER_DATAFILES": str(home / "datafiles"),
                "TMPDIR": str(tmp_path / "tmp"),
                "PYTHONPATH": str(ROOT),  # the backend subprocess imports the repository's gtr_backend with torch
                "GTR_TEST_BACKEND_PYTHON": sys.executable,
            }
        )
        (tmp_path / "tmp").mkdir(exist_ok=True)
        done = subprocess.run(
            [python, str(SCRIPTS / script), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=tmp_path,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            pytest.fail(f"{script} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return json.loads(lines[-1][len("RESULT ") :])

    return run
