"""Set Up Backend: a virtual environment under the extension's user folder with the PyTorch build this machine
needs (backend/hardware.py) and the backend's other requirements; resumes a setup that failed or was cancelled.
With "Build the fast GPU rasterizer now" on an NVIDIA GPU, it also installs nvdiffrast and builds its CUDA
rasterizer in the backend's Python (`gtr build-rasterizer`, whose progress lines show as the stage)."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import TextIO, cast

import bpy

from ..backend import shutdown_all
from ..backend.environment import SetupRun, base_python, plan_setup
from ..backend.hardware import TorchBuild, detect
from ..contract import backend_source
from ..paths import backend_log, environment_folder
from ..preferences import preferences
from ..props import status
from .base import Result

PROGRESS_WORDS = ("GTR setup", "Collecting", "Downloading", "Installing", "Processing", "Successfully", "rasterizer:")


class BackendSetup:
    """What Set Up Backend and Repair Backend share: checks, the run in a thread, progress, the outcome. `repair`
    chooses a fresh environment swapped in at the end over resuming the existing one."""

    repair = False
    run_: SetupRun | None = None
    build: TorchBuild | None = None
    timer = None
    log: TextIO | None = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not status(context).running

    def execute(self, context: bpy.types.Context) -> Result:
        prefs = preferences(context)
        wheels = Path(bpy.path.abspath(prefs.wheels_path)) if prefs.wheels_path else None
        if wheels is None and not bpy.app.online_access:
            return self._refuse(
                "installing needs the internet, and Blender's 'Allow Online Access' is off: "
                "turn it on (Preferences > System > Network) or set a Wheels Folder"
            )
        if wheels is not None and not wheels.is_dir():
            return self._refuse(f"the wheels folder {wheels} does not exist")
        self.build = detect()
        if not self.build.supported:
            return self._refuse(f"no PyTorch build fits this machine: {self.build.reason}")
        shutdown_all()  # the old environment's backend must not hold files being replaced
        rasterizer = backend_source() if prefs.build_gpu_rasterizer else None  # used on a CUDA build only
        plan = plan_setup(environment_folder(), base_python(), wheels, self.build, self.repair, rasterizer)
        self.log = backend_log().open("a", encoding="utf-8")
        self.log.write(f"\n== {self.title()}: {self.build.summary()} ({self.build.reason})\n")
        self.run_ = SetupRun(plan)
        state = status(context)
        state.running, state.cancel_requested, state.progress = True, False, 0.0
        state.stage = f"{'repairing' if self.repair else 'setting up'}: PyTorch {self.build.label}"
        if bpy.app.background:
            while self.run_.result is None or not self.run_.lines.empty():
                self._drain(context, wait=0.2)
            return self._finish(context)
        self.timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(cast(bpy.types.Operator, self))
        return {"RUNNING_MODAL"}

    def title(self) -> str:
        return "Repair Backend" if self.repair else "Set Up Backend"

    def _refuse(self, message: str) -> Result:
        self.report({"ERROR"}, f"GTR: {message}")  # type: ignore[attr-defined]
        return {"CANCELLED"}

    def _drain(self, context: bpy.types.Context, wait: float = 0.0) -> None:
        """Show the commands' progress lines as the stage and copy all their output to the backend log."""
        assert self.run_ is not None
        state = status(context)
        try:
            lines = [self.run_.lines.get(timeout=wait)] if wait else []
        except queue.Empty:
            return
        while not self.run_.lines.empty():
            lines.append(self.run_.lines.get())
        for line in lines:
            if self.log is not None:
                self.log.write(line + "\n")
            if line.startswith(PROGRESS_WORDS):
                state.stage = line.removeprefix("GTR setup: ")[:100]
                state.progress = min(0.95, state.progress + 0.03)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        assert self.run_ is not None
        if event.type == "ESC" or status(context).cancel_requested:
            self.run_.stop()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        self._drain(context)
        return {"RUNNING_MODAL"} if self.run_.result is None else self._finish(context)

    def _finish(self, context: bpy.types.Context) -> Result:
        assert self.run_ is not None and self.build is not None
        self._drain(context)
        if self.timer is not None:
            context.window_manager.event_timer_remove(self.timer)
        if self.log is not None:
            self.log.write(f"== {self.title()}: {self.run_.result or 'done'}\n")
            self.log.close()
        state = status(context)
        state.running, state.stage = False, ""
        if self.run_.result:
            kept = (
                "the old environment is unchanged"
                if self.run_.plan.fresh
                else "what was installed is kept: Set Up Backend again resumes"
            )
            state.message = f"backend setup failed: {self.run_.result} ({kept})"
            self.report({"ERROR"}, f"GTR: {state.message}")  # type: ignore[attr-defined]
            return {"CANCELLED"}
        preferences(context).python_path = ""  # use the environment just made
        state.message, state.progress = f"backend ready (PyTorch {self.build.label}): press Check Backend", 1.0
        if self.run_.notes:  # an optional step (the fast GPU rasterizer) could not be done: said, not failed
            state.message += "; the PyTorch rasterizer will be used: " + "; ".join(self.run_.notes)
        self.report({"WARNING" if self.run_.notes else "INFO"}, f"GTR: {state.message}")  # type: ignore[attr-defined]
        return {"FINISHED"}


class GTR_OT_setup_backend(BackendSetup, bpy.types.Operator):
    """Create a Python environment for the backend with the PyTorch build for this machine (CUDA, Apple Metal or
    CPU) and the other requirements; after a failure, press again to go on where it stopped"""

    bl_idname = "gtr.setup_backend"
    bl_label = "Set Up Backend"
