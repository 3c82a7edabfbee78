#!/usr/bin/env bash
# The project's one test command (README.md, "Tests"; .ci/run calls exactly this).
# On a fresh machine it makes .venv, installs torch==2.13.0 (the CPU build) and the project with its dev tools,
# plus real Blender as a module (bpy 5.0.1; bpy 4.2.23 LTS in .venv-bpy42) and fake-bpy-module, then runs lint
# (ruff), formatting, types (mypy on gtr_backend, blender_addon and build.py) and the tests (pytest, Blender
# ones included, in both Blender versions). Needs no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$python" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev,blender]"
# Blender 4.2 LTS as a module, in a Python of its own (bpy 4.2 and 5.0 cannot share one): the add-on's tests
# that take `bpy_python` run in both (tests/blender/conftest.py).
[ -x .venv-bpy42/bin/python ] || "$python" -m venv .venv-bpy42
.venv-bpy42/bin/python -m pip install -q bpy==4.2.23
export GTR_REQUIRE_BPY_LTS=1

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
