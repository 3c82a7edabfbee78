"""Build the installable Blender extension: python build.py [--output dist]

The zip holds blender_manifest.toml and the add-on (`blender_addon/`) at its root, the backend's source
(`gtr_backend/`, the product: bundled starter weights included) as a sub-package, and the licence; never the
lab (`gtr_lab/`: training, evaluation, synthetic data and their commands). Before writing it, the build checks
what Blender's extension rules ask for: manifest fields, no `bl_info`, relative imports only (the extension is
imported as `bl_ext.<repository>.<id>`), no import of the lab, and no caches or tests inside.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FIRST_PARTY = {"blender_addon", "gtr_backend"}
LAB = "gtr_lab"  # beside the product in the repository, never in the extension
REQUIRED = (
    "schema_version",
    "id",
    "version",
    "name",
    "tagline",
    "maintainer",
    "type",
    "blender_version_min",
    "license",
)
EXCLUDED_PARTS = {"__pycache__", "tests", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


class BuildError(Exception):
    pass


def check_manifest(path: Path) -> dict[str, object]:
    manifest = tomllib.loads(path.read_text())
    missing = [key for key in REQUIRED if key not in manifest]
    if missing:
        raise BuildError(f"{path.name}: missing {', '.join(missing)}")
    if manifest["schema_version"] != "1.0.0" or manifest["type"] != "add-on":
        raise BuildError(f"{path.name}: expected schema_version 1.0.0 and type add-on")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", str(manifest["id"])):
        raise BuildError(f"{path.name}: id must be a lower-case Python identifier")
    if tuple(int(p) for p in str(manifest["blender_version_min"]).split(".")) < (4, 2, 0):
        raise BuildError(f"{path.name}: blender_version_min must be 4.2.0 or later")
    if "SPDX:GPL-3.0-or-later" not in manifest["license"]:
        raise BuildError(f"{path.name}: the licence must be SPDX:GPL-3.0-or-later")
    tagline = str(manifest["tagline"])
    if len(tagline) > 64 or tagline[-1] in ".!?":
        raise BuildError(f"{path.name}: the tagline must be at most 64 characters with no final punctuation")
    for permission, reason in dict(manifest.get("permissions", {})).items():
        if not reason or str(reason)[-1] in ".!?":
            raise BuildError(f"{path.name}: permission {permission!r} needs a reason without final punctuation")
    return manifest


def check_sources(folder: Path) -> None:
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        # Imports under `if TYPE_CHECKING:` are read by the type checker only, never run inside Blender.
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "bl_info" for t in node.targets):
                raise BuildError(f"{path}: extensions use blender_manifest.toml, not bl_info")
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                line = getattr(node, "lineno", 0)
                if name.split(".")[0] == LAB:
                    raise BuildError(f"{path}:{line}: imports the lab ({name}), which the extension does not ship")
                if name.split(".")[0] in FIRST_PARTY:
                    raise BuildError(f"{path}:{line}: absolute import of {name}; use a relative import")


def files_to_pack() -> list[tuple[Path, str]]:
    def keep(path: Path) -> bool:
        return path.is_file() and not EXCLUDED_PARTS.intersection(path.parts) and path.suffix not in {".pyc", ".pyo"}

    pairs = [(ROOT / "blender_manifest.toml", "blender_manifest.toml"), (ROOT / "LICENSE", "LICENSE")]
    addon = ROOT / "blender_addon"
    pairs += [(p, str(p.relative_to(addon))) for p in sorted(addon.rglob("*")) if keep(p.relative_to(ROOT))]
    backend = ROOT / "gtr_backend"
    pairs += [(p, str(p.relative_to(ROOT))) for p in sorted(backend.rglob("*")) if keep(p.relative_to(ROOT))]
    return pairs


def build(output: Path) -> Path:
    manifest = check_manifest(ROOT / "blender_manifest.toml")
    check_sources(ROOT / "blender_addon")
    check_sources(ROOT / "gtr_backend")
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"{manifest['id']}-{manifest['version']}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, name in files_to_pack():
            archive.write(path, name.replace("\\", "/"))
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
    bad = [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith(("tests/", f"{LAB}/"))]
    if bad or "__init__.py" not in names or "blender_manifest.toml" not in names:
        raise BuildError(f"{target}: unexpected contents {bad[:3]}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the Blender extension zip.")
    parser.add_argument("--output", type=Path, default=ROOT / "dist")
    args = parser.parse_args()
    try:
        target = build(args.output)
    except BuildError as error:
        print(f"build.py: {error}", file=sys.stderr)
        return 2
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
