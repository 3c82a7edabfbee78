"""Set Up Backend (its failure paths: offline without wheels, a wheels folder that lacks them) and Check Backend."""

import sys
from pathlib import Path

import bpy
from common import addon_module, finish, install, preferences, status, use_this_python_as_backend

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


attempt("offline, no wheels", bpy.ops.gtr.setup_backend)
empty = scratch / "wheels"
empty.mkdir()
preferences().wheels_path = str(empty)
attempt("wheels missing", bpy.ops.gtr.setup_backend)
environment = addon_module("paths").environment_python()
outcomes["environment_python_exists"] = environment.is_file()
outcomes["environment_inside_user_folder"] = "extensions" in str(environment) and ".user" in str(environment)
use_this_python_as_backend()
attempt("check", bpy.ops.gtr.check_backend)
finish(outcomes)
