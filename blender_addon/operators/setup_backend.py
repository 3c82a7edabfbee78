"""Set Up Backend: a virtual environment under the extension's user folder with the backend's requirements."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..backend import shutdown_all
from ..backend.environment import SetupRun, base_python, setup_commands
from ..paths import environment_folder
from ..preferences import preferences
from ..props import status
from .base import Result


class GTR_OT_setup_backend(bpy.types.Operator):
    """Create a Python environment for the backend and install PyTorch and the other requirements into it"""

    bl_idname = "gtr.setup_backend"
    bl_label = "Set Up Backend"

    run_: SetupRun | None = None
    timer = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not status(context).running

    def execute(self, context: bpy.types.Context) -> Result:
        prefs = preferences(context)
        wheels = Path(bpy.path.abspath(prefs.wheels_path)) if prefs.wheels_path else None
        if wheels is None and not bpy.app.online_access:
            self.report(
                {"ERROR"},
                "GTR: installing needs the internet, and Blender's 'Allow Online Access' is off: "
                "turn it on (Preferences > System > Network) or set a Wheels Folder",
            )
            return {"CANCELLED"}
        if wheels is not None and not wheels.is_dir():
            self.report({"ERROR"}, f"GTR: the wheels folder {wheels} does not exist")
            return {"CANCELLED"}
        shutdown_all()  # the old environment's backend must not hold files being replaced
        self.run_ = SetupRun(setup_commands(environment_folder(), base_python(), wheels))
        state = status(context)
        state.running, state.cancel_requested, state.stage, state.progress = True, False, "creating environment", 0.0
        if bpy.app.background:
            while self.run_.result is None:
                self._drain(context)
            return self._finish(context)
        self.timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _drain(self, context: bpy.types.Context) -> None:
        assert self.run_ is not None
        state = status(context)
        while not self.run_.lines.empty():
            line = self.run_.lines.get()
            if line.startswith(("Collecting", "Downloading", "Installing", "Processing", "Successfully")):
                state.stage = line[:80]
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
        assert self.run_ is not None
        if self.timer is not None:
            context.window_manager.event_timer_remove(self.timer)
        state = status(context)
        state.running, state.stage = False, ""
        if self.run_.result:
            state.message = f"backend setup failed: {self.run_.result}"
            self.report({"ERROR"}, f"GTR: {state.message}")
            return {"CANCELLED"}
        preferences(context).python_path = ""  # use the environment just made
        state.message, state.progress = "backend ready: press Check Backend", 1.0
        self.report({"INFO"}, f"GTR: {state.message}")
        return {"FINISHED"}
