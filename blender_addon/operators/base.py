"""What every long-running operator shares: submit a backend request, then poll it on a timer from Blender's
main thread (progress bar, stage text, Esc or the Cancel button), and finish or fail cleanly."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal, cast

import bpy

from ..backend import Backend, BackendError, Job, backend_for
from ..contract import backend_source, contract, errors
from ..paths import backend_log, environment_python, user_folder
from ..preferences import option_values, preferences
from ..props import status

Result = set[Literal["RUNNING_MODAL", "CANCELLED", "FINISHED", "PASS_THROUGH", "INTERFACE"]]


def get_backend(context: bpy.types.Context) -> Backend:
    """The backend the preferences choose (started on first use, warming up their weights and device)."""
    prefs = preferences(context)
    python = Path(bpy.path.abspath(prefs.python_path)) if prefs.python_path else environment_python()
    log = backend_log()
    chosen = weights_and_device(context)
    warm_up = (chosen["weights"], chosen["device"])
    return backend_for(prefs.backend_mode, python, backend_source(), log, user_folder("jobs"), warm_up)


def reconstruct_options(context: bpy.types.Context) -> dict[str, Any]:
    return option_values(preferences(context))


def weights_and_device(context: bpy.types.Context) -> dict[str, Any]:
    prefs = preferences(context)
    return {"weights": bpy.path.abspath(prefs.weights_path) if prefs.weights_path else None, "device": prefs.device}


def operator_id(operator: object) -> str:
    """An operator's "category.name" id, also from a registered instance (which reports "CATEGORY_OT_name")."""
    name = str(getattr(type(operator), "bl_idname", ""))
    if "_OT_" in name:
        category, rest = name.split("_OT_", 1)
        return f"{category.lower()}.{rest}"
    return name


def warm_up(context: bpy.types.Context) -> None:
    """Start the backend and load the model now, without waiting, so the next click does not wait for either.
    A backend that cannot start is reported when the user asks for a job, not here."""
    with contextlib.suppress(BackendError, OSError):
        get_backend(context).submit("load", **weights_and_device(context))


class BackendJobOperator:
    """Mixin for modal operators; subclasses call `launch` from `execute`/`modal` and implement
    `on_result` (must leave the scene changed only on success) and optionally `on_cancelled`."""

    job: Job | None = None
    backend: Backend | None = None
    timer: Any = None
    started: float = 0.0
    new_job: Path | None = None  # a job folder this operator made: removed on failure, and after success
    # unless the "Keep Input Views" preference keeps it for Refine Texture

    def launch(self, context: bpy.types.Context, op: str, **arguments: Any) -> Result:
        """Submit the request and follow it (modal in the UI, waiting in background mode); a backend that cannot
        start is reported in plain words and nothing changes."""
        self.backend = get_backend(context)
        state = status(context)
        state.running, state.cancel_requested = True, False
        state.stage, state.progress, state.message, state.warning = "starting the backend", 0.0, "", ""
        if not self.started:
            self.started = time.perf_counter()
        try:
            self.job = self.backend.submit(op, **arguments)
        except (BackendError, OSError) as error:
            return self.fail(context, str(error))
        if self.timer is None and not bpy.app.background:
            self.timer = context.window_manager.event_timer_add(0.1, window=context.window)
            context.window_manager.modal_handler_add(cast(bpy.types.Operator, self))
            context.window_manager.progress_begin(0, 100)
        return self._follow(context)

    def launch_reconstruct(
        self, context: bpy.types.Context, views: dict[str, Any], job: Path, **overrides: Any
    ) -> Result:
        """`launch` a reconstruction of `views` (a request's view spec) into `job` with the preferences'
        options (but `overrides`, option name -> value), weights and device."""
        status(context).retry_options = status(context).retry_operator = ""  # a new attempt: no old offer
        options = {**reconstruct_options(context), **overrides}
        return self.launch(
            context, "reconstruct", views=views, job=str(job), options=options, **weights_and_device(context)
        )

    def _follow(self, context: bpy.types.Context) -> Result:
        """In the UI, go modal; in background mode (blender -b, bpy as a module: no event loop, so no timers),
        wait here, going through exactly the same reply handling."""
        if not bpy.app.background:
            return {"RUNNING_MODAL"}
        while True:
            result = self.poll_job(context, None)
            if result != {"RUNNING_MODAL"}:
                return result
            time.sleep(0.05)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        if event.type == "TIMER" or (event.type == "ESC" and event.value == "PRESS"):
            return self.poll_job(context, event)
        return {"PASS_THROUGH"}

    def cancel_requested(self, context: bpy.types.Context, event: bpy.types.Event | None) -> bool:
        escape = event is not None and event.type == "ESC" and event.value == "PRESS"
        return status(context).cancel_requested or escape

    def poll_job(self, context: bpy.types.Context, event: bpy.types.Event | None) -> Result:
        """One timer tick: read replies; returns the modal operator's result."""
        assert self.job is not None and self.backend is not None
        state = status(context)
        if self.cancel_requested(context, event) and state.stage != "cancelling":
            self.backend.cancel(self.job)
            state.stage = "cancelling"
        for message in self.job.drain():
            kind = message.get("type")
            if kind == "progress":
                state.stage = message.get("stage", "")
                state.progress = float(message.get("fraction", 0.0))
                context.window_manager.progress_update(int(state.progress * 100))
            elif kind == "result":
                try:  # its fields, as the contract defines them: the operators read them without a fallback
                    contract.check_reply(self.job.op, message)
                except errors.GTRError as error:
                    return self.fail(context, str(error))
                state.backend_seconds = float(message.get("seconds", 0.0))
                state.warning = " ".join(message.get("warnings") or [])  # the views load, but see why
                try:
                    self.on_result(context, message)
                except Exception as error:  # placing the result failed: nothing was added (see results.py)
                    return self.fail(context, f"could not add the result to the scene: {error}")
                seconds = time.perf_counter() - self.started
                if contract.fidelity_problem(message.get("fidelity") or {}):  # delivered, but not called done
                    return self.finish(context, f"finished in {seconds:.1f} s, but the result does not match its views")
                return self.finish(context, f"done in {seconds:.1f} s")
            elif kind == "error":
                if message.get("cancelled"):
                    return self.fail(context, "cancelled; the scene is unchanged", cancelled=True)
                if message.get("retry_options"):  # out of memory: the panel offers a retry with these
                    state.retry_options = json.dumps(message["retry_options"])
                    state.retry_operator = operator_id(self)
                return self.fail(context, message.get("message", "the backend failed"))
        for area in context.screen.areas if context.screen else []:
            if area.type == "VIEW_3D":
                area.tag_redraw()
        return {"RUNNING_MODAL"}

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def cleanup(self, context: bpy.types.Context) -> None:
        """Remove temporary data (overridden by operators that make some)."""

    def _stop(self, context: bpy.types.Context) -> None:
        if self.timer is not None:
            context.window_manager.event_timer_remove(self.timer)
            context.window_manager.progress_end()
            self.timer = None
        self.cleanup(context)
        state = status(context)
        state.running, state.cancel_requested = False, False
        state.last_seconds = time.perf_counter() - self.started if self.started else 0.0

    def finish(self, context: bpy.types.Context, text: str) -> Result:
        self._stop(context)
        if self.new_job is not None and not preferences(context).keep_jobs:
            shutil.rmtree(self.new_job, ignore_errors=True)
        state = status(context)
        state.stage, state.progress, state.message = "", 1.0, text
        self.report({"INFO"}, f"GTR: {text}")  # type: ignore[attr-defined]
        if state.warning:
            self.report({"WARNING"}, f"GTR: {state.warning}")  # type: ignore[attr-defined]
        return {"FINISHED"}

    def fail(self, context: bpy.types.Context, text: str, cancelled: bool = False) -> Result:
        self._stop(context)
        if self.new_job is not None:  # nothing in the scene refers to it
            shutil.rmtree(self.new_job, ignore_errors=True)
        state = status(context)
        state.stage, state.progress, state.message, state.warning = "", 0.0, text, ""
        self.report({"WARNING" if cancelled else "ERROR"}, f"GTR: {text}")  # type: ignore[attr-defined]
        return {"CANCELLED"}


class BackendRequestOperator(BackendJobOperator):
    """Mixin for operators that send the backend one request without arguments (`request`) while no job runs,
    and report its reply (`on_result`)."""

    request = ""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not status(context).running

    def execute(self, context: bpy.types.Context) -> Result:
        return self.launch(context, self.request)
