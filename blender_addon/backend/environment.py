"""Create the backend's own Python environment and install its requirements (no bpy: runs in a thread).

The install is three steps: make a virtual environment, install torch (the build `hardware.choose_build` picked,
from PyTorch's index for it), install the other requirements. pip installs wheels only (`--only-binary=:all:`:
nothing is compiled on the user's machine by pip), or, offline, only from a local wheels folder. On an NVIDIA GPU,
when the user opts in ("Build the fast GPU rasterizer now"), two optional steps follow: install nvdiffrast and
ninja, then build nvdiffrast's CUDA rasterizer with the backend's own `gtr build-rasterizer` (it needs the CUDA
toolkit's nvcc; a stale lock from an interrupted build is removed). An optional step that fails leaves the
setup successful, with a note: the backend then uses the PyTorch rasterizer.

Resuming: the environment's MARKER file records the build it is for and each step that finished; running the
setup again skips those and goes on from the one that failed (pip itself skips what is already installed). A
half-made environment is never deleted. An environment for another build, another Python, or one without a marker
is not patched: a fresh one is built in a staging folder next to it and swapped in only once it is complete, so a
failed rebuild leaves the old environment usable. Repair always does that.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hardware import TorchBuild

# The backend's runtime requirements (pyproject.toml's [project] dependencies; a test keeps them equal).
REQUIREMENTS = (
    "torch>=2.4",
    "numpy>=1.26",
    "pillow>=10",
    "safetensors>=0.4",
    "trimesh>=4",
    "xatlas>=0.0.9",
    "fast-simplification>=0.1.7",
    "tqdm>=4.60",
)
# The fast GPU rasterizer's extras (nvdiffrast: non-commercial licence), installed only when the user opts in.
RASTERIZER_REQUIREMENTS = ("diffrp-nvdiffrast>=0.3.3", "ninja>=1.11")
MARKER = "gtr-setup.json"  # in the environment: {"identity": ..., "done": {step: fingerprint}, "complete": bool}
STAGING_SUFFIX = ".new"  # a fresh environment is built in "<environment>.new", then renamed into place
OLD_SUFFIX = ".old"  # the environment being replaced, for the moment of the swap


def base_python() -> Path:
    """The Python to make the environment with: Blender's own (sys.executable is its interpreter)."""
    return Path(sys.executable)


def python_in(folder: Path) -> Path:
    """The interpreter of the virtual environment in `folder`."""
    return folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


@dataclass(frozen=True)
class Step:
    """One command of the setup; `name` is what the marker records once it succeeded."""

    name: str
    command: list[str]
    fingerprint: str  # what the marker stores: the same step with other arguments (another index) runs again
    optional: bool = False  # its failure is a note, not the setup's failure
    cwd: str | None = None  # where it runs (None: here)


def pip_install(python: Path, packages: list[str], index_url: str | None, wheels: Path | None) -> list[str]:
    """A pip command that installs wheels only: from `wheels` alone when given (no network), else from
    `index_url` (None: the normal package index)."""
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    command += ["--only-binary=:all:", "--progress-bar", "off"]
    if wheels is not None:
        command += ["--no-index", "--find-links", str(wheels)]
    elif index_url is not None:
        command += ["--index-url", index_url]
    return command + packages


def setup_steps(
    folder: Path, python: Path, wheels: Path | None, build: TorchBuild, rasterizer: Path | None = None
) -> list[Step]:
    """The steps that make the environment in `folder` with `python` and install `build`'s torch and the rest;
    with `rasterizer` (the folder that holds the backend's source) on a CUDA build, also the optional steps that
    install nvdiffrast and build its CUDA rasterizer."""
    env_python = python_in(folder)
    torch = pip_install(env_python, [REQUIREMENTS[0]], build.index_url, wheels)
    rest = pip_install(env_python, list(REQUIREMENTS[1:]), None, wheels)
    # Fingerprints leave out the folder: an environment built apart and swapped in counts as done where it lands.
    steps = [
        Step("environment", [str(python), "-m", "venv", str(folder)], f"venv from {python}"),
        Step("torch", torch, " ".join(torch[1:])),
        Step("requirements", rest, " ".join(rest[1:])),
    ]
    if rasterizer is not None and build.accelerator == "cuda":
        extras = pip_install(env_python, list(RASTERIZER_REQUIREMENTS), None, wheels)
        compile_ = [str(env_python), "-m", "gtr_backend.cli", "build-rasterizer"]
        steps += [
            Step("nvdiffrast", extras, " ".join(extras[1:]), optional=True),
            Step("rasterizer", compile_, f"gtr build-rasterizer for {build.variant}", True, str(rasterizer)),
        ]
    return steps


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's marker, or None when it has none (or an unreadable one)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def write_marker(folder: Path, marker: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / (MARKER + ".tmp")
    temporary.write_text(json.dumps(marker, indent=1), encoding="utf-8")
    temporary.replace(folder / MARKER)


@dataclass
class SetupPlan:
    """Where the environment is built (`work`) and ends up (`target`), and the steps to run there."""

    target: Path
    work: Path
    steps: list[Step]
    identity: dict[str, str]  # the build and Python the environment is for
    why: str  # said before the steps run: resuming, fresh, and why
    done: dict[str, str] = field(default_factory=dict)  # step name -> fingerprint, from an earlier run

    @property
    def fresh(self) -> bool:
        """True when the environment is built apart and swapped in at the end."""
        return self.work != self.target

    def pending(self) -> list[Step]:
        """The steps an earlier run has not finished (or ran with other arguments)."""
        return [step for step in self.steps if self.done.get(step.name) != step.fingerprint]


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def plan_setup(
    target: Path,
    python: Path,
    wheels: Path | None,
    build: TorchBuild,
    repair: bool = False,
    rasterizer: Path | None = None,
) -> SetupPlan:
    """Resume in `target` when it is empty or a (possibly half-made) environment for the same build and Python;
    otherwise, or for a repair, build a fresh one in `target` + STAGING_SUFFIX. `rasterizer`: the backend's
    source folder, to build the fast GPU rasterizer too (`setup_steps`)."""
    identity = {"torch": build.variant, "python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    marker = read_marker(target)
    if not repair and not _has_files(target):
        steps = setup_steps(target, python, wheels, build, rasterizer)
        return SetupPlan(target, target, steps, identity, "new environment")
    if not repair and marker is not None and marker.get("identity") == identity:
        done = marker.get("done")
        steps = setup_steps(target, python, wheels, build, rasterizer)
        return SetupPlan(target, target, steps, identity, "resuming", dict(done) if isinstance(done, dict) else {})
    if repair:
        why = "repair: a fresh environment"
    elif marker is None:
        why = "the existing environment has no setup record: building a fresh one"
    else:
        old = marker.get("identity") or {}
        why = (
            f"the existing environment is for PyTorch '{old.get('torch')}' on Python {old.get('python')}, this "
            f"machine needs '{identity['torch']}' on Python {identity['python']}: building a fresh one"
        )
    work = target.with_name(target.name + STAGING_SUFFIX)
    return SetupPlan(target, work, setup_steps(work, python, wheels, build, rasterizer), identity, why)


def swap_in(new: Path, target: Path) -> None:
    """Put the complete environment `new` where `target` is; if that fails, `target` is as it was. A virtual
    environment works from its new place for `python -m ...` (its interpreter finds its pyvenv.cfg beside it)."""
    old = target.with_name(target.name + OLD_SUFFIX)
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if old.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


class SetupRun:
    """Runs a SetupPlan in a thread; `lines` receives the commands' output, `result` the outcome ("" on success,
    "cancelled", or the error), `notes` what optional steps could not do. Each finished step is recorded in the
    marker at once, so a later run resumes."""

    def __init__(self, plan: SetupPlan, start: bool = True) -> None:
        self.plan = plan
        self.lines: queue.Queue[str] = queue.Queue()
        self.result: str | None = None
        self.notes: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self.stopped = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        if start:
            self.thread.start()

    def run(self) -> None:
        """Run the plan (the thread's body; call directly to run it in this thread)."""
        plan = self.plan
        if plan.fresh:
            shutil.rmtree(plan.work, ignore_errors=True)  # a staging folder left by a failed run: start clean
        self.lines.put(f"GTR setup: {plan.why}")
        error = self._run_steps()
        if not error and plan.fresh:
            try:
                swap_in(plan.work, plan.target)
            except OSError as failure:
                error = f"the new environment could not replace the old one ({failure}); close programs using it"
        if error and plan.fresh:
            shutil.rmtree(plan.work, ignore_errors=True)  # the old environment is untouched and still used
        self.result = error

    def _run_steps(self) -> str:
        plan = self.plan
        done = dict(plan.done)
        write_marker(plan.work, {"identity": plan.identity, "done": done, "complete": False})
        for step in plan.steps:
            if done.get(step.name) == step.fingerprint:
                self.lines.put(f"GTR setup: {step.name}: already done")
                continue
            error = self._run(step.command, step.cwd)
            if error and step.optional and error != "cancelled":
                self.notes.append(error)
                self.lines.put(f"GTR setup: {step.name}: not done ({error})")
                continue
            if error:
                return error
            done[step.name] = step.fingerprint
            write_marker(plan.work, {"identity": plan.identity, "done": done, "complete": False})
        write_marker(plan.work, {"identity": plan.identity, "done": done, "complete": True})
        return ""

    def _run(self, command: list[str], cwd: str | None = None) -> str:
        if self.stopped:
            return "cancelled"
        tail: list[str] = []
        try:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=cwd,  # the backend's source folder, for `python -m gtr_backend...`
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        except OSError as error:
            return f"could not run {command[0]}: {error}"
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip())
            tail = [*tail, line.rstrip()][-5:]
        if self.process.wait() == 0:
            return ""
        if self.stopped:
            return "cancelled"
        said = [t.removeprefix("gtr: error: ") for t in tail if t.startswith("gtr: error: ")]  # the backend's line
        return said[-1] if said else f"'{' '.join(command[:4])} ...' failed: " + " | ".join(t for t in tail if t)

    def stop(self) -> None:
        self.stopped = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
