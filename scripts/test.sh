#!/usr/bin/env bash
# The project's one test command (README.md, "Tests"; .ci/run calls exactly this).
# On a fresh machine it makes .venv, installs torch==2.13.0 (the CPU build) and the project with its dev tools,
# plus real Blender as a module (bpy 5.0.1) and fake-bpy-module, then runs lint (ruff), formatting, types (mypy
# on gtr_backend, blender_addon and build.py) and the tests (pytest, Blender ones included). Needs no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$python" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev,blender]"

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
