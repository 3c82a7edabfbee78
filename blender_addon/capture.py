"""Render the selected objects from orbit cameras into a view folder the backend reads.

Everything happens in a temporary scene that holds links to the selected objects, a camera and a evenly lit
world: the user's scene, its render settings, selection and active object are never touched, and the
temporary data is removed whatever happens (`CaptureSession.close`). Views are rendered one per call to
`render_next`, so the modal operator can keep Blender responsive and honour Esc between views.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import bpy
from mathutils import Matrix, Vector

from .frames import Normalization, camera_from_backend, camera_to_backend, matrix_rows, orbit_camera, xyz

DISTANCE = 2.7  # camera distance in the backend frame at a 40-degree field of view (the training setup)


@dataclass(frozen=True)
class CaptureSettings:
    azimuths: tuple[float, ...] = (0.0, 90.0, 180.0, 270.0)
    elevation: float = 20.0
    fov: float = 40.0
    resolution: int = 512
    engine: str = "CYCLES"
    samples: int = 32

    @property
    def distance(self) -> float:
        """Farther for narrower lenses, so the object fills the frame the same at any field of view."""
        return DISTANCE * math.tan(math.radians(20.0)) / math.tan(math.radians(self.fov) / 2)


def world_bounds(objects: list[bpy.types.Object]) -> tuple[Vector, Vector]:
    """Axis-aligned bounding box (low, high) of the objects' evaluated geometry in world space."""
    corners = [obj.matrix_world @ Vector(corner) for obj in objects for corner in obj.bound_box]
    low = Vector(tuple(min(c[i] for c in corners) for i in range(3)))
    high = Vector(tuple(max(c[i] for c in corners) for i in range(3)))
    return low, high


class CaptureSession:
    def __init__(self, objects: list[bpy.types.Object], settings: CaptureSettings, folder: Path) -> None:
        if not objects:
            raise ValueError("select the object(s) to capture first")
        self.settings, self.folder = settings, folder
        self.objects = objects
        bpy.context.view_layer.update()  # matrices set by scripts are evaluated only on update
        low, high = world_bounds(objects)
        self.normalization = Normalization.of_box(low, high)
        self.size = high - low
        self.index = 0
        self.cameras: list[dict[str, object]] = []
        folder.mkdir(parents=True, exist_ok=True)
        self.scene: bpy.types.Scene | None = bpy.data.scenes.new("GTR capture")
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def _build(self) -> None:
        s, scene = self.settings, self.scene
        for obj in self.objects:
            scene.collection.objects.link(obj)
        self.world = bpy.data.worlds.new("GTR capture light")
        self.world.use_nodes = True
        background = self.world.node_tree.nodes.get("Background")
        if background is not None:  # an even white light from every side: colours close to the albedo
            background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
            background.inputs["Strength"].default_value = 1.0
        scene.world = self.world
        render = scene.render
        render.engine = s.engine
        render.resolution_x = render.resolution_y = s.resolution
        render.resolution_percentage = 100
        render.film_transparent = True
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGBA"
        render.image_settings.color_depth = "8"
        scene.view_settings.view_transform = "Standard"
        if s.engine == "CYCLES":
            cycles = getattr(scene, "cycles")  # noqa: B009  # registered by the Cycles add-on, not in the stubs
            cycles.samples = s.samples
            cycles.use_denoising = False
            cycles.device = "CPU"
        elif s.engine == "BLENDER_WORKBENCH":
            scene.display.shading.light = "FLAT"
            scene.display.shading.color_type = "TEXTURE"
        self.camera_data = bpy.data.cameras.new("GTR capture camera")
        self.camera_data.sensor_fit = "AUTO"
        self.camera_data.angle = math.radians(s.fov)
        scale = 1 / self.normalization.scale
        self.camera_data.clip_start = 0.01 * scale
        self.camera_data.clip_end = 100 * scale
        self.camera = bpy.data.objects.new("GTR capture camera", self.camera_data)
        scene.collection.objects.link(self.camera)
        scene.camera = self.camera

    @property
    def total(self) -> int:
        return len(self.settings.azimuths)

    def render_next(self, context: bpy.types.Context) -> bool:
        """Render the next view; False when all are done."""
        if self.index >= self.total:
            return False
        s = self.settings
        c2w = orbit_camera(s.azimuths[self.index], s.elevation, s.distance)
        self.camera.matrix_world = camera_from_backend(c2w, self.normalization)
        name = f"view_{self.index:03d}.png"
        self.scene.render.filepath = str(self.folder / name)
        with context.temp_override(scene=self.scene):
            bpy.ops.render.render(write_still=True)
        focal = 0.5 * s.resolution / math.tan(math.radians(s.fov) / 2)
        exported = camera_to_backend(self.camera.matrix_world, self.normalization)
        self.cameras.append(
            {
                "image": name,
                "fx": focal,
                "fy": focal,
                "cx": s.resolution / 2,
                "cy": s.resolution / 2,
                "matrix": matrix_rows(exported),
            }
        )
        self.index += 1
        return self.index < self.total

    def write_cameras(self) -> Path:
        """cameras.json (the backend's "gtr-views/1" format) and capture.json (how to map results back)."""
        path = self.folder / "cameras.json"
        path.write_text(
            json.dumps(
                {
                    "format": "gtr-views/1",
                    "camera_axes": "opencv",
                    "pose": "camera_to_world",
                    "world_up": "+y",
                    "views": self.cameras,
                },
                indent=1,
            )
        )
        (self.folder / "capture.json").write_text(
            json.dumps(
                {
                    "centre": list(xyz(self.normalization.centre)),
                    "scale": self.normalization.scale,
                    "objects": [obj.name for obj in self.objects],
                },
                indent=1,
            )
        )
        return path

    def close(self) -> None:
        """Remove everything the capture made; the user's data is as before."""
        for datablock, collection in (
            (getattr(self, "camera", None), bpy.data.objects),
            (getattr(self, "camera_data", None), bpy.data.cameras),
            (getattr(self, "world", None), bpy.data.worlds),
        ):
            if datablock is not None:
                collection.remove(datablock)
        if self.scene is not None:
            bpy.data.scenes.remove(self.scene)
            self.scene = None


def placement(source: bpy.types.Object, normalization: Normalization, beside: bool) -> tuple[Matrix, Matrix]:
    """(matrix_world for the result, backend frame -> the result's local frame): the result takes the source's
    location, rotation and scale, so with `beside` off it lies exactly on the source; with it on it is moved
    along world X by 1.2 times the captured width."""
    to_local = source.matrix_world.inverted_safe() @ normalization.inverse
    width = 2 * 0.9 / normalization.scale
    offset = Matrix.Translation((1.2 * width, 0.0, 0.0)) if beside else Matrix.Identity(4)
    return offset @ source.matrix_world, to_local
