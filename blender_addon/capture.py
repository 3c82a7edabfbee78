"""Render the selected objects from orbit cameras into a view folder the backend reads.

Framing: the selection's evaluated geometry (modifiers, geometry nodes, curves and text as meshes) is bounded
by a sphere, which is mapped onto the backend's working sphere (`frames.Normalization`); the cameras stand far
enough that this sphere is inside every view with a margin at any field of view the panel allows, so nothing
is cropped whatever the object's shape or orientation.

Everything happens in a temporary scene that holds links to the selected objects only, a camera and an
evenly lit white world (the same light in every view): the user's scene, its render settings, selection and
active object are never touched, and the temporary data is removed whatever happens (`CaptureSession.close`).
Views are rendered one per call to `render_next`, so the modal operator can keep Blender responsive and honour
Esc between views; each rendered view is checked (the object is there, not cropped, not a speck) before the
next.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from .contract import contract
from .frames import (
    Normalization,
    camera_from_backend,
    camera_to_backend,
    matrix_rows,
    orbit_camera,
    transform_points,
    xyz,
)

FILL = 0.9  # the working sphere spans at most this fraction of the half field of view (the margin)
MIN_COVERAGE = 0.02  # a view where the object covers less than this is refused


class CaptureError(Exception):
    """The capture cannot give the backend usable views; the message says why and what to do."""


@dataclass(frozen=True)
class CaptureSettings:
    azimuths: tuple[float, ...] = contract.ORBIT_AZIMUTHS_DEG
    elevation: float = contract.ORBIT_ELEVATION_DEG
    fov: float = contract.ORBIT_FOV_DEG
    resolution: int = 512
    engine: str = "CYCLES"
    samples: int = 32

    @property
    def distance(self) -> float:
        """Camera distance in the backend frame: as in training (ORBIT_DISTANCE at ORBIT_FOV_DEG, farther for
        narrower lenses so the object fills the frame alike), and never so close that the working sphere
        leaves the view (wide lenses)."""
        half = math.radians(self.fov) / 2
        training = contract.ORBIT_DISTANCE * math.tan(math.radians(contract.ORBIT_FOV_DEG) / 2) / math.tan(half)
        return max(training, contract.VIEW_RADIUS / math.sin(FILL * half))


def world_points(objects: list[bpy.types.Object]) -> np.ndarray:
    """(P, 3) world-space vertices of the objects' evaluated geometry (modifiers and geometry nodes applied;
    curves, surfaces, metaballs and text as Blender meshes them for rendering)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    chunks = []
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        try:
            local = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
            mesh.vertices.foreach_get("co", local)
        finally:
            evaluated.to_mesh_clear()
        chunks.append(transform_points(local.reshape(-1, 3), evaluated.matrix_world))
    # Instances the selection makes (geometry nodes, particles, collection instances) are not in its mesh:
    # their bounding boxes count too.
    selected = {obj.original for obj in objects}
    for instance in depsgraph.object_instances:
        if instance.is_instance and instance.parent is not None and instance.parent.original in selected:
            corners = np.array([tuple(corner) for corner in instance.object.bound_box], dtype=np.float64)
            chunks.append(transform_points(corners, instance.matrix_world))
    return np.concatenate(chunks) if chunks else np.zeros((0, 3))


def bounding_sphere(points: np.ndarray) -> tuple[Vector, float]:
    """(centre, radius) of a sphere holding every point: centred on their bounding box."""
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    radius = float(np.linalg.norm(points - centre, axis=1).max())
    return Vector(tuple(float(c) for c in centre)), radius


def check_view(path: Path, index: int) -> None:
    """Refuse a rendered view whose object is missing, cropped by the border or a speck (`CaptureError`)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = int(image.size[0]), int(image.size[1])  # type: ignore[index]
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    mask = pixels[3::4].reshape(height, width) > 0.5
    view = f"view {index + 1}"
    if not mask.any():
        raise CaptureError(
            f"{view} shows nothing of the selection: make sure it renders (the camera icon in the Outliner) "
            "and has faces"
        )
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        raise CaptureError(
            f"{view} crops the object at its border: something renders beyond the selection's geometry "
            "(displacement, particles or hair); apply it or capture without it"
        )
    if mask.mean() < MIN_COVERAGE:
        raise CaptureError(
            f"the object covers only {mask.mean():.1%} of {view}: select one object or objects close together"
        )


class CaptureSession:
    def __init__(self, objects: list[bpy.types.Object], settings: CaptureSettings, folder: Path) -> None:
        if not objects:
            raise ValueError("select the object(s) to capture first")
        self.settings, self.folder = settings, folder
        self.objects = objects
        bpy.context.view_layer.update()  # matrices set by scripts are evaluated only on update
        points = world_points(objects)
        if len(points) == 0:
            raise CaptureError("the selection has no geometry to capture (no vertices after its modifiers)")
        self.normalization = Normalization.of_sphere(*bounding_sphere(points))
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
        linked = set()
        for obj in self.objects:
            # An object that instances its children on its vertices or faces needs them in the scene.
            sources = list(obj.children) if obj.instance_type in {"VERTS", "FACES"} else []
            for part in (obj, *sources):
                if part.name not in linked:
                    scene.collection.objects.link(part)
                    linked.add(part.name)
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
        check_view(self.folder / name, self.index)
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
        path = self.folder / contract.CAMERAS_JSON
        path.write_text(
            json.dumps(
                {
                    "format": contract.VIEWS_FORMAT,
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
    along world X by 1.2 times the captured width (the bounding sphere's diameter)."""
    to_local = source.matrix_world.inverted_safe() @ normalization.inverse
    width = 2 * normalization.radius
    offset = Matrix.Translation((1.2 * width, 0.0, 0.0)) if beside else Matrix.Identity(4)
    return offset @ source.matrix_world, to_local
