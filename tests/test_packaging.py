"""build.py: the extension zip's contents and the checks it makes before writing it."""

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import build  # noqa: E402

sys.path.remove(str(ROOT))


def test_zip_holds_the_addon_and_backend_and_nothing_else(tmp_path):
    with zipfile.ZipFile(build.build(tmp_path)) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    assert {
        "__init__.py",
        "blender_manifest.toml",
        "LICENSE",
        "operators/render_selected.py",
        "gtr_backend/server/__main__.py",
        "gtr_backend/assets/gtr-small-starter.safetensors",
    } <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("tests/")]
    # The product only: no lab, no training, evaluation or synthetic data, none of the lab's commands.
    lab = ("gtr_lab/", "gtr_backend/training/", "gtr_backend/evaluation/", "gtr_backend/synthetic/")
    assert not [n for n in names if n.startswith(lab)]
    commands = {n.rsplit("/", 1)[1] for n in names if n.startswith("gtr_backend/cli/")}
    assert commands == {"__init__.py", "__main__.py", "common.py", "reconstruct.py", "views.py", "convert.py",
                        "build_rasterizer.py"}  # fmt: skip
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"] and manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) == {"files", "network"}


# Imports every module of the product from the folder given, with the lab hidden as if not installed, then runs
# a lab command through the product's `gtr`.
WITHOUT_THE_LAB = """
import importlib, importlib.abc, pkgutil, sys
from pathlib import Path

class NoLab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "gtr_lab":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoLab())
sys.path.insert(0, sys.argv[1])
import gtr_backend
assert Path(gtr_backend.__file__).parent == Path(sys.argv[1]) / "gtr_backend", gtr_backend.__file__
for module in pkgutil.walk_packages(gtr_backend.__path__, "gtr_backend."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
from gtr_backend.cli import main
sys.exit(main(["train", "-o", "weights.safetensors"]))
"""


def test_the_zipped_product_runs_without_the_lab(tmp_path):
    with zipfile.ZipFile(build.build(tmp_path / "dist")) as archive:
        archive.extractall(tmp_path / "extension")
    command = [sys.executable, "-c", WITHOUT_THE_LAB, str(tmp_path / "extension")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("gtr: error: 'gtr train' is a lab command")
    assert "pip install -e '.[dev]'" in line


def test_build_rejects_bl_info_and_absolute_imports(tmp_path):
    (tmp_path / "ok.py").write_text("from . import thing\nimport numpy\n")
    build.check_sources(tmp_path)
    (tmp_path / "bad.py").write_text("from gtr_backend.views import load_views\n")
    with pytest.raises(build.BuildError, match="absolute import of gtr_backend.views"):
        build.check_sources(tmp_path)
    (tmp_path / "bad.py").write_text("def run():\n    from gtr_lab.training import train\n")
    with pytest.raises(build.BuildError, match="bad.py:2: imports the lab"):
        build.check_sources(tmp_path)
    (tmp_path / "bad.py").write_text('bl_info = {"name": "x"}\n')
    with pytest.raises(build.BuildError, match="bl_info"):
        build.check_sources(tmp_path)


def test_manifest_checks(tmp_path):
    good = (ROOT / "blender_manifest.toml").read_text()
    build.check_manifest(ROOT / "blender_manifest.toml")
    bad = tmp_path / "blender_manifest.toml"
    bad.write_text(good.replace('blender_version_min = "4.2.0"', 'blender_version_min = "4.1.0"'))
    with pytest.raises(build.BuildError, match="4.2.0"):
        build.check_manifest(bad)
    bad.write_text(good.replace('license = ["SPDX:GPL-3.0-or-later"]', 'license = ["SPDX:MIT"]'))
    with pytest.raises(build.BuildError, match="GPL"):
        build.check_manifest(bad)


def test_backend_setup_installs_what_pyproject_declares():
    tree = ast.parse((ROOT / "blender_addon" / "backend" / "environment.py").read_text())
    requirements = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "REQUIREMENTS"
    )
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(requirements) == sorted(declared)


def test_every_public_name_of_the_package_imports():
    """The names `import gtr_backend as gtr` offers (docs/command-line.md, "Python API"), each from the module
    that holds it."""
    import gtr_backend

    for name in gtr_backend.__all__:
        assert getattr(gtr_backend, name) is not None, name


def imported_modules(path: Path) -> set[str]:
    """The absolute module names a source file imports (relative imports resolved against its package)."""
    package = list(path.relative_to(ROOT).with_suffix("").parts)[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_the_product_never_imports_the_lab():
    """gtr_backend and the add-on name the lab only as the `gtr` command's LAB string, never in an import."""
    sources = [*(ROOT / "gtr_backend").rglob("*.py"), *(ROOT / "blender_addon").rglob("*.py")]
    assert len(sources) > 50
    offenders = [str(p.relative_to(ROOT)) for p in sources if any(m.startswith("gtr_lab") for m in imported_modules(p))]
    assert offenders == []
    # The lab imports the product (the check above would see a lab import in any file): the direction is one way.
    lab = {m for p in (ROOT / "gtr_lab").rglob("*.py") for m in imported_modules(p)}
    assert "gtr_backend.reconstruction" in lab


def test_training_never_imports_evaluation():
    """The lab's imports go one way: the benchmarks (evaluation) time training, training needs no evaluation."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "gtr_lab" / "training").rglob("*.py")
        if any(m.startswith("gtr_lab.evaluation") for m in imported_modules(p))
    ]
    assert offenders == []
