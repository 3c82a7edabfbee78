"""Render Selected to 3D: capture the selected objects from cameras all around (16 by default, plus 2 held out
to score the result honestly), with their diffuse colour and depth passes, and rebuild them as one textured
mesh beside the source, which stays untouched. With "Keep Camera Rig" the capture cameras stay in the scene as
the camera rig (`rig.py`), their rendered images as background images, on the source where they rendered it."""

from __future__ import annotations

import time
from typing import Any

import bpy
from mathutils import Matrix

from ..capture import CaptureError, CaptureSession, CaptureSettings, placement
from ..frames import xyz
from ..paths import new_job_folder
from ..props import settings, status
from ..results import add_result
from ..rig import build_rig, discard_rig, install_rig, load_image, remove_datablocks
from .base import BackendJobOperator, Result, warm_up

CAPTURABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT"}


class GTR_OT_render_selected_to_3d(BackendJobOperator, bpy.types.Operator):
    """Render the selected objects from orbit cameras and reconstruct them as a clean textured mesh"""

    bl_idname = "gtr.render_selected_to_3d"
    bl_label = "Render Selected to 3D"
    bl_options = {"REGISTER", "UNDO"}

    session: CaptureSession | None = None
    capture_note = ""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not status(context).running and any(o.type in CAPTURABLE for o in context.selected_objects)

    def execute(self, context: bpy.types.Context) -> Result:
        s = settings(context)
        objects = [o for o in context.selected_objects if o.type in CAPTURABLE]
        self.source = context.active_object if context.active_object in objects else objects[0]
        capture = CaptureSettings(
            s.capture_views,
            s.capture_held_out,
            s.capture_elevation,
            s.capture_fov,
            s.capture_resolution,
            s.capture_engine,
            s.capture_samples,
            s.capture_passes,
        )
        self.started = time.perf_counter()  # click to mesh includes rendering the views
        self.folder = self.new_job = new_job_folder()
        self.beside = s.place_beside
        self.keep_rig = s.keep_rig
        try:
            self.session = CaptureSession(objects, capture, self.folder / "views")
        except CaptureError as error:
            return self.fail(context, str(error))
        warm_up(context)  # the backend starts and loads its model while the views render
        state = status(context)
        state.running, state.cancel_requested, state.message = True, False, ""
        if bpy.app.background:
            try:
                while self.session.render_next(context):
                    pass
            except CaptureError as error:
                return self.fail(context, str(error))
            except Exception as error:
                return self.fail(context, f"rendering the views failed: {error}")
            return self.submit(context)
        self.timer = context.window_manager.event_timer_add(0.05, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.window_manager.progress_begin(0, 100)
        return {"RUNNING_MODAL"}

    def submit(self, context: bpy.types.Context) -> Result:
        assert self.session is not None
        self.session.write_cameras()
        self.capture_note = self.session.note
        self.normalization = self.session.normalization
        self.captured = list(self.session.cameras)  # cameras.json entries, for "Keep Camera Rig"
        self.session.close()
        self.session = None
        views = {"path": str(self.folder / "views"), "orbit": None, "zero123pp": False}
        return self.launch_reconstruct(context, views, self.folder, auto_faces=settings(context).capture_auto_faces)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        if self.session is None:
            return super().modal(context, event)
        if self.cancel_requested(context, event):
            return self.fail(context, "cancelled; the scene is unchanged", cancelled=True)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = status(context)
        state.stage = f"rendering view {self.session.index + 1} of {self.session.total}"
        try:
            more = self.session.render_next(context)
        except CaptureError as error:
            return self.fail(context, str(error))
        except Exception as error:
            return self.fail(context, f"rendering the views failed: {error}")
        state.progress = self.session.index / self.session.total * 0.2
        context.window_manager.progress_update(int(state.progress * 100))
        return {"RUNNING_MODAL"} if more else self.submit(context)

    def cleanup(self, context: bpy.types.Context) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        if self.capture_note:  # shown and reported with the backend's own warnings when the job finishes
            state = status(context)
            state.warning = f"{state.warning} {self.capture_note[0].upper()}{self.capture_note[1:]}.".strip()
        matrix_world, to_local = placement(self.source, self.normalization, self.beside)
        rig = self.capture_rig() if self.keep_rig else None
        try:
            add_result(context, self.folder, f"{self.source.name} GTR", matrix_world, to_local)
        except BaseException:
            if rig is not None:
                discard_rig(rig)
            raise
        if rig is not None:
            assert context.scene is not None
            install_rig(context.scene, rig)

    def capture_rig(self) -> bpy.types.Collection:
        """The capture's cameras as a rig (not yet in the scene): its origin maps the backend frame onto the
        captured object (`Normalization.inverse` = origin @ BACKEND_TO_BLENDER), images packed from the job."""
        n = self.normalization
        origin = Matrix.Translation(xyz(n.centre)) @ Matrix.Scale(1 / n.scale, 4)
        names = [str(view["image"]) for view in self.captured]
        self.rig_images = []
        try:
            for name in names:
                self.rig_images.append(load_image(self.folder / "views" / name, f"{self.source.name} {name}"))
            return build_rig(self.source.name, origin, self.captured, self.rig_images, names)
        except BaseException:
            remove_datablocks(self.rig_images)
            raise
