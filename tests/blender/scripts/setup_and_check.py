"""Set Up Backend and Repair Backend for real, offline: refused without online access, failing on a wheels folder
that lacks the wheels, then a real CPU install from a local wheels folder (the wheels of this Python's own torch
and requirements, repacked) that fails for one missing wheel and resumes once it is there; a repair that fails
leaves the environment working, one that succeeds replaces it. Check Backend runs in the environment made."""

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import bpy
from common import addon_module, finish, install, preferences, status, use_this_python_as_backend
from packaging.requirements import Requirement

install(sys.argv[1])
scratch = Path(sys.argv[2])
outcomes = {}


def attempt(name, operator):
    try:
        result = operator()
        reported = ""
    except RuntimeError as error:
        result, reported = {"CANCELLED"}, str(error)
    outcomes[name] = {"result": sorted(result), "reported": reported, **status()}


def closure(requirements):
    """The installed distributions `requirements` need, with what they need in turn (markers evaluated here)."""
    found, todo = {}, [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key not in found:
            found[key] = metadata.distribution(requirement.name)
            todo += [Requirement(r) for r in found[key].requires or []]
    return found


def repack(distribution, folder):
    """A real wheel of an installed distribution, made from its RECORD (uncompressed: torch is large)."""
    info = Path(distribution._path)  # its .dist-info folder
    tags = [line[5:].strip() for line in (info / "WHEEL").read_text().splitlines() if line.startswith("Tag: ")]
    parts = [".".join(sorted({tag.split("-")[i] for tag in tags})) for i in range(3)]
    name = re.sub(r"[-_.]+", "_", distribution.metadata["Name"])
    wheel = folder / f"{name}-{distribution.version}-{'-'.join(parts)}.whl"
    skip = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for file in distribution.files or []:
            path = file.as_posix()
            if path.startswith("..") or "__pycache__" in path or (path.startswith(info.name) and file.name in skip):
                continue
            data = Path(distribution.locate_file(file)).read_bytes()
            archive.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        archive.writestr(f"{info.name}/RECORD", "\n".join([*record, f"{info.name}/RECORD,,"]) + "\n")
    return wheel


attempt("offline, no wheels", bpy.ops.gtr.setup_backend)
empty = scratch / "wheels-empty"
empty.mkdir()
preferences().wheels_path = str(empty)
attempt("wheels missing", bpy.ops.gtr.setup_backend)

environment = addon_module("paths").environment_folder()
environment_python = addon_module("paths").environment_python()
wheels = scratch / "wheels"
wheels.mkdir()
requirements = addon_module("backend.environment").REQUIREMENTS
held_back = None
for key, distribution in closure(requirements).items():
    made = repack(distribution, wheels)
    if key == "tqdm":
        held_back = made.rename(scratch / made.name)  # the last step's wheel: that step fails, torch stays
preferences().wheels_path = str(wheels)
attempt("one wheel missing", bpy.ops.gtr.setup_backend)
marker = addon_module("backend.environment").read_marker(environment)
outcomes["done after failure"] = sorted(marker["done"]) if marker else None
held_back.rename(wheels / held_back.name)
outcomes["wheels"] = sorted(p.name.split("-")[0].lower() for p in wheels.iterdir())
attempt("resumed", bpy.ops.gtr.setup_backend)
outcomes["log"] = addon_module("paths").backend_log().read_text()


def imports_from_environment():
    code = "import torch, numpy, PIL, safetensors, trimesh, xatlas, fast_simplification, tqdm; print(torch.__file__)"
    done = subprocess.run([str(environment_python), "-I", "-c", code], capture_output=True, text=True)
    return done.returncode == 0 and Path(done.stdout.strip()).resolve().is_relative_to(environment.resolve())


outcomes["environment_python_exists"] = environment_python.is_file()
outcomes["environment_inside_user_folder"] = "extensions" in str(environment) and ".user" in str(environment)
outcomes["imports_from_environment"] = imports_from_environment()
preferences().device = "cpu"
attempt("check in the environment", bpy.ops.gtr.check_backend)
outcomes["python_path"] = preferences().python_path

(environment / "sentinel").touch()
preferences().wheels_path = str(empty)
attempt("repair fails", bpy.ops.gtr.repair_backend)
outcomes["kept after failed repair"] = (environment / "sentinel").exists() and imports_from_environment()
attempt("check after failed repair", bpy.ops.gtr.check_backend)
preferences().wheels_path = str(wheels)
attempt("repair", bpy.ops.gtr.repair_backend)
outcomes["replaced by repair"] = not (environment / "sentinel").exists() and imports_from_environment()
outcomes["leftovers"] = sorted(p.name for p in environment.parent.iterdir() if p.name.startswith("backend-env."))

use_this_python_as_backend()
attempt("check", bpy.ops.gtr.check_backend)
finish(outcomes)
