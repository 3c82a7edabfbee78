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

Cameras (`capture_rig`): the orbit the network was trained on (4 views a quarter-turn apart at the capture
elevation) comes first, then, up to the view count asked for, a camera straight above and one below, and two
rings (high and low) between the orbit's cameras; then the held-out views, which the backend keeps out of the
fit and the texture and scores the result on (an honest fidelity score).

Passes (`passes=True`, Cycles and EEVEE): each view's image is the object's base colour without any light, so
the texture carries no baked shading, with the lit render's alpha; its depth (camera z of the surface each
pixel sees) goes beside it for the shape. Where a material has a Principled BSDF, temporary copies of the
materials (`MaterialProbe`; the user's own are never edited) also write its base colour, roughness, metallic and
emission as AOVs: the base colour comes from there (a metal's too), and a material pass (roughness, metallic)
and, when something glows, an emission pass go beside the image. Elsewhere the base colour is Blender's diffuse
colour pass; an object whose look has none Blender can split out (emission-only shaders, volumes) keeps the lit
colours, and the capture says so (`CaptureSession.note`), as it does for a source without a Principled BSDF
(base colour only).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
MIN_COVERAGE = 0.02  # a capture where the object covers less than this of every view is refused (a speck)
MIN_PIXELS = 256  # a view where the object covers fewer pixels is refused (a sliver the hull cannot use)


class CaptureError(Exception):
    """The capture cannot give the backend usable views; the message says why and what to do."""


PASS_ENGINES = {"CYCLES", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"}  # engines that render a diffuse colour pass
# The material probe's AOVs (`MaterialProbe`): the Principled BSDF's base colour; its roughness, metallic and 1
# (known) as a colour; its emission colour times strength.
AOV_BASE, AOV_PBR, AOV_EMISSION = "gtr_base_color", "gtr_pbr", "gtr_emission"
ONE_SAMPLE_FILTER = 0.5  # Cycles' pixel filter width (px) for one sample per pixel: placed near the centre
LIT_SAMPLES = 16  # at least this many Cycles samples where the result is made of the lit render (noisy from fewer)
NO_ALBEDO = 0.02  # mean diffuse colour (0-1) below which, where the lit render is not dark, there is none


def capture_rig(views: int, elevation: float, held_out: int) -> list[tuple[float, float, bool]]:
    """(azimuth, elevation in degrees, held out) of every capture camera: the 4-view orbit at `elevation`
    first; from 6 views on also one straight above and one below; the rest on a high ring (elevation
    +50) and a low ring (-25), between the orbit's azimuths; then `held_out` cameras at elevations near 0,
    between all the others."""
    rig = [(a, elevation, False) for a in contract.ORBIT_AZIMUTHS_DEG[: min(views, 4)]]
    extra = max(0, views - len(rig))
    if extra >= 2:
        rig += [(0.0, 88.0, False), (0.0, -88.0, False)]
        extra -= 2
    high = (extra + 1) // 2
    for count, ring_elevation in ((high, 50.0), (extra - high, -25.0)):
        rig += [(45.0 + 360.0 * i / count, ring_elevation, False) for i in range(count)]
    rig += [(67.5 + 360.0 * i / held_out, 8.0 - 16.0 * (i % 2), True) for i in range(held_out)]
    return rig


@dataclass(frozen=True)
class CaptureSettings:
    views: int = 4  # cameras the result is made from (the first 4 are the network's orbit)
    held_out: int = 0  # more cameras, only to score the result on views it was not made from
    elevation: float = contract.ORBIT_ELEVATION_DEG
    fov: float = contract.ORBIT_FOV_DEG
    resolution: int = 512
    engine: str = "CYCLES"
    samples: int = 1  # Cycles; where the result is made of the lit render, at least LIT_SAMPLES
    passes: bool = False  # the diffuse colour (albedo) and depth passes (Cycles and EEVEE)

    @property
    def rig(self) -> list[tuple[float, float, bool]]:
        return capture_rig(self.views, self.elevation, self.held_out)

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


def check_view(path: Path, index: int) -> float:
    """Refuse a rendered view whose object is missing, cropped by the border or a sliver of a few pixels
    (`CaptureError`); returns the share of the view the object covers. A thin object seen end-on (a post from
    above) may cover little of a view and still be seen well: only a whole capture of specks is refused
    (`check_coverage`)."""
    mask = read_png(path)[..., 3] > 0.5
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
    if int(mask.sum()) < MIN_PIXELS:
        raise CaptureError(
            f"the object covers only {int(mask.sum())} pixels of {view}, too few to see its shape: turn it a "
            "little (a flat object exactly edge-on) or raise the capture resolution"
        )
    return float(mask.mean())


def check_coverage(best: float) -> None:
    """Refuse a capture whose best view shows the object as a speck, covering `best` < MIN_COVERAGE of it
    (`CaptureError`)."""
    if best < MIN_COVERAGE:
        raise CaptureError(
            f"the object covers only {best:.1%} of the views at most: select one object or objects close together"
        )


class MaterialProbe:
    """Temporary copies of the captured objects' materials that also write their Principled BSDF's base colour,
    roughness, metallic and emission as AOVs (the view layer's `AOV_*` passes), put into the objects' material
    slots for the capture; `close` puts the user's own materials back and removes the copies. A material
    without a Principled BSDF (on the way from its output to the surface) is left as it is: its pixels read 0 in
    the AOVs, which the capture takes as "not known"."""

    def __init__(self, objects: list[bpy.types.Object], layer: bpy.types.ViewLayer) -> None:
        self.copies: dict[str, bpy.types.Material] = {}  # original material's name -> its instrumented copy
        self.swapped: list[tuple[bpy.types.MaterialSlot, bpy.types.Material]] = []
        self.emits = False  # some material emits light
        try:
            for name in (AOV_BASE, AOV_PBR, AOV_EMISSION):
                if name not in layer.aovs:
                    aov = layer.aovs.add()
                    aov.name, aov.type = name, "COLOR"
            seen: set[str] = set()
            for obj in objects:
                for part in (obj, *(obj.children if obj.instance_type in {"VERTS", "FACES"} else [])):
                    if part.name in seen:
                        continue
                    seen.add(part.name)
                    for slot in part.material_slots:
                        original = slot.material
                        if original is None:
                            continue
                        copy = self.copies.get(original.name) or self._instrument(original)
                        if copy is None:
                            continue
                        self.copies[original.name] = copy
                        self.swapped.append((slot, original))
                        slot.material = copy
        except Exception:
            self.close()
            raise

    def _instrument(self, material: bpy.types.Material) -> bpy.types.Material | None:
        """A copy of `material` whose Principled BSDF also feeds the AOVs, or None when it has none."""
        if not material.use_nodes or material.node_tree is None:
            return None
        principled = _surface_principled(material.node_tree)
        if principled is None:
            return None
        copy = material.copy()
        copy.name = f"{material.name} (GTR capture)"
        tree: Any = copy.node_tree  # (nodes and sockets are typed by kind at run time: the stubs cannot follow)
        shader: Any = tree.nodes[principled.name]

        def output(name: str) -> Any:
            node = tree.nodes.new("ShaderNodeOutputAOV")
            if hasattr(node, "aov_name"):
                node.aov_name = name
            else:  # Blender before 4.0 named it `name`
                node.name = name
            return node

        def feed(target: Any, source: Any, scale: float = 1.0) -> None:
            if source.is_linked:
                tree.links.new(source.links[0].from_socket, target)
                return
            value = source.default_value
            if hasattr(value, "__len__"):
                width = len(target.default_value)
                target.default_value = tuple(float(v) * scale for v in value[:width]) + (1.0,) * (width - len(value))
            else:
                target.default_value = float(value) * scale

        feed(output(AOV_BASE).inputs["Color"], shader.inputs["Base Color"])
        combine = tree.nodes.new("ShaderNodeCombineColor")
        feed(combine.inputs[0], shader.inputs["Roughness"])
        feed(combine.inputs[1], shader.inputs["Metallic"])
        combine.inputs[2].default_value = 1.0  # known
        tree.links.new(combine.outputs[0], output(AOV_PBR).inputs["Color"])
        colour = next((shader.inputs[n] for n in ("Emission Color", "Emission") if n in shader.inputs), None)
        strength = shader.inputs.get("Emission Strength")
        if colour is not None:
            scale = tree.nodes.new("ShaderNodeVectorMath")
            scale.operation = "SCALE"
            feed(scale.inputs[0], colour)
            if strength is not None:
                feed(scale.inputs["Scale"], strength)
            tree.links.new(scale.outputs[0], output(AOV_EMISSION).inputs["Color"])
            self.emits |= _emits(colour, strength)
        return copy

    def close(self) -> None:
        """Put the user's materials back and remove the copies."""
        for slot, original in reversed(self.swapped):
            slot.material = original
        self.swapped.clear()
        for copy in self.copies.values():
            bpy.data.materials.remove(copy)
        self.copies.clear()


def _surface_principled(tree: Any) -> Any:
    """The Principled BSDF that the material's output reaches first through its Surface input (across mix and
    add shaders), or None."""
    output = tree.get_output_node("CYCLES") if hasattr(tree, "get_output_node") else None
    output = output or next((n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial"), None)
    if output is None or not output.inputs["Surface"].is_linked:
        return None
    queue = [output.inputs["Surface"].links[0].from_node]
    visited: set[str] = set()
    while queue:
        node = queue.pop(0)
        if node.name in visited:
            continue
        visited.add(node.name)
        if node.bl_idname == "ShaderNodeBsdfPrincipled":
            return node
        if node.bl_idname in {"ShaderNodeMixShader", "ShaderNodeAddShader"}:
            queue += [link.from_node for socket in node.inputs for link in socket.links]
    return None


def _emits(colour: Any, strength: Any) -> bool:
    """Whether a Principled BSDF's emission can be more than black (a linked input might be)."""
    if strength is not None and not strength.is_linked and float(strength.default_value) <= 0.0:
        return False
    return colour.is_linked or max(float(v) for v in colour.default_value[:3]) > 0.0


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
        self.best_coverage = 0.0  # the largest share of a view the object has covered so far
        self.note = ""  # what the user should know about the capture (a pass that could not be used)
        self.lit_only = not (settings.passes and settings.engine in PASS_ENGINES)
        self.restart = False  # the views so far are to be rendered again (`set_samples` raised the samples)
        self.samples = 0  # Cycles samples per view (`set_samples`; 0 for other engines)
        self.compositor: Compositor | None = None
        self.probe: MaterialProbe | None = None
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
            cycles.use_denoising = False
            cycles.device = "CPU"
            if s.passes:  # the passes the result is made of see the first hit only: light bounces cost for nothing
                cycles.max_bounces = 1
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
        if not self.lit_only:
            assert scene is not None
            self.probe = MaterialProbe(self.objects, scene.view_layers[0])
            self.compositor = Compositor(scene, self.folder / "passes")
            if not self.probe.copies:
                self.note = (
                    "its materials have no Principled BSDF, so the result has a base colour only (no roughness, "
                    "metallic or emission)"
                )
        self.set_samples()

    def set_samples(self) -> int:
        """Set and return the Cycles samples (0 for other engines): the passes the result is made of (diffuse
        colour, depth, material) are exact from one sample per pixel (the surface at the pixel's centre: the
        sharpest texture); the lit render is noisy from few, so where the result is made of it (no pass, or a
        look without a base colour) at least LIT_SAMPLES."""
        if self.settings.engine != "CYCLES" or self.scene is None:
            return 0
        self.samples = max(self.settings.samples, LIT_SAMPLES) if self.lit_only else self.settings.samples
        cycles = getattr(self.scene, "cycles")  # noqa: B009  # registered by the Cycles add-on, not in the stubs
        cycles.samples = self.samples
        # Cycles places each sample by its pixel filter (1.5 px wide by default): one sample alone would land
        # anywhere within it, so it is narrowed to the middle of the pixel (exactly at its centre, thin stripes
        # alias); more samples keep the filter's smoothing.
        cycles.filter_width = ONE_SAMPLE_FILTER if self.samples == 1 else 1.5
        return self.samples

    @property
    def total(self) -> int:
        return len(self.settings.rig)

    def render_next(self, context: bpy.types.Context) -> bool:
        """Render the next view; False when all are done."""
        if self.index >= self.total:
            return False
        s = self.settings
        azimuth, elevation, held_out = s.rig[self.index]
        c2w = orbit_camera(azimuth, elevation, s.distance)
        self.camera.matrix_world = camera_from_backend(c2w, self.normalization)
        name = f"view_{self.index:03d}.png"
        self.scene.render.filepath = str(self.folder / name)
        with context.temp_override(scene=self.scene):
            bpy.ops.render.render(write_still=True)
        self.best_coverage = max(self.best_coverage, check_view(self.folder / name, self.index))
        if self.index + 1 == self.total:
            check_coverage(self.best_coverage)
        focal = 0.5 * s.resolution / math.tan(math.radians(s.fov) / 2)
        exported = camera_to_backend(self.camera.matrix_world, self.normalization)
        entry: dict[str, object] = {
            "image": name,
            "fx": focal,
            "fy": focal,
            "cx": s.resolution / 2,
            "cy": s.resolution / 2,
            "matrix": matrix_rows(exported),
        }
        if held_out:
            entry["held_out"] = True
        if self.compositor is not None:
            entry.update(self._use_passes(self.folder / name))
        if self.restart:  # from the first view again, every one alike
            self.restart, self.index, self.cameras, self.best_coverage = False, 0, [], 0.0
            return True
        self.cameras.append(entry)
        self.index += 1
        return self.index < self.total

    def _use_passes(self, lit: Path) -> dict[str, object]:
        """Put the base colour into the view's image (the lit render's alpha kept) and write its depth in the
        backend's units beside it, and its material and emission passes where the probe gave them; returns the
        cameras.json keys to add. The lit image is kept as `*_lit.png`. If the base colour is empty where the
        object is lit, every view keeps its lit colour."""
        assert self.compositor is not None
        passes = self.compositor.read()
        albedo = passes["albedo"][..., :3] if "albedo" in passes else None
        depth = passes.get("depth")
        lit_rgba = read_png(lit)
        alpha = lit_rgba[..., 3]
        solid = alpha > 0.99
        keys: dict[str, object] = {}
        if depth is not None:
            # Full floats: the depth places the surface to a fraction of a pixel.
            z = np.where(solid & (depth[..., 0] < 1e9), depth[..., 0] * self.normalization.scale, 0.0)
            depth_name = lit.stem + "_depth.npy"
            np.save(self.folder / depth_name, z.astype(np.float32))
            keys["depth"] = depth_name
        coverage = np.maximum(alpha, 1e-3)[..., None]  # the passes are filtered like coverage at outlines
        if albedo is not None and "pbr" in passes and self.probe is not None and self.probe.copies:
            pbr = passes["pbr"][..., :3] / coverage
            known = (pbr[..., 2] > 0.5) & (alpha > 0.0)
            if "base" in passes:  # the Principled BSDF's own base colour (a metal's too), where it told us
                albedo = np.where(known[..., None], passes["base"][..., :3], albedo)
            material = np.concatenate([pbr[..., :2], np.zeros_like(pbr[..., :1]), known[..., None]], axis=-1)
            keys["material"] = lit.stem + "_material.png"
            write_png(self.folder / str(keys["material"]), np.where(alpha[..., None] > 0, material, 0.0), raw=True)
            if self.probe.emits and "emission" in passes:
                emitted = linear_to_srgb(passes["emission"][..., :3] / coverage)
                keys["emission"] = lit.stem + "_emission.png"
                write_png(self.folder / str(keys["emission"]), np.concatenate([emitted, alpha[..., None]], -1))
        if albedo is None or self.lit_only:
            return keys
        object_pixels = alpha > 0.5
        if float(albedo[object_pixels].mean()) < NO_ALBEDO and float(lit_rgba[..., :3][object_pixels].mean()) > 0.1:
            self.lit_only = True
            self.note = (
                "the object's look has no diffuse colour Blender can split out (emission-only or metallic "
                "shaders, volumes), so its texture is taken from the lit renders"
            )
            before = self.samples
            if self.set_samples() > before:
                self.restart = True  # the lit renders so far had too few samples: render them again
                return keys
            for earlier in self.cameras:  # views already switched to their diffuse colour go back to lit
                image = self.folder / str(earlier["image"])
                image.with_name(image.stem + "_lit.png").replace(image)
            return keys
        lit.replace(lit.with_name(lit.stem + "_lit.png"))
        straight = albedo / coverage
        write_png(lit, np.concatenate([linear_to_srgb(straight), alpha[..., None]], axis=-1))
        return keys

    def write_cameras(self) -> Path:
        """cameras.json (the backend's "gtr-views/1" format) and capture.json (how to map results back)."""
        path = contract.write_cameras(self.folder, self.cameras)
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
        if self.compositor is not None:
            self.compositor.close()
            self.compositor = None
        if self.probe is not None:
            self.probe.close()
            self.probe = None
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


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Scene-linear colour (0-1) -> sRGB-encoded display values (the "Standard" view transform)."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def read_png(path: Path) -> np.ndarray:
    """(H, W, 4) float32 RGBA of an 8-bit PNG as stored (row 0 at the top)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = int(image.size[0]), int(image.size[1])  # type: ignore[index]
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1]


def write_png(path: Path, rgba: np.ndarray, raw: bool = False) -> None:
    """Write (H, W, 4) RGBA in [0, 1] (display values, row 0 at the top) as an 8-bit PNG; `raw`: plain values
    (roughness, metallic), stored as they are."""
    height, width = rgba.shape[:2]
    image = bpy.data.images.new("GTR capture pass", width, height, alpha=True)
    if raw:
        image.colorspace_settings.name = "Non-Color"
    try:
        image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1], dtype=np.float32).ravel())  # type: ignore[arg-type]
        image.filepath_raw = str(path)
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)


def _read_exr(path: Path) -> np.ndarray:
    """(H, W, C) float32 of a single-layer EXR the compositor wrote (row 0 at the top)."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height, channels = int(image.size[0]), int(image.size[1]), int(image.channels)  # type: ignore[index]
        pixels = np.empty(width * height * channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, channels)[::-1]


class Compositor:
    """The capture scene's compositor: it writes each render's diffuse colour and depth passes, and the material
    probe's AOVs, as EXR files into `folder`, which `read` returns as arrays and deletes. Blender 5.0 keeps the
    compositor in a node group and names the diffuse pass "Diffuse Color"; 4.2 keeps it on the scene and calls
    it "DiffCol"."""

    SOCKETS = {
        "albedo": ("Diffuse Color", "DiffCol"),
        "depth": ("Depth",),
        "base": (AOV_BASE,),
        "pbr": (AOV_PBR,),
        "emission": (AOV_EMISSION,),
    }

    def __init__(self, scene: bpy.types.Scene, folder: Path) -> None:
        self.scene, self.folder = scene, folder
        folder.mkdir(parents=True, exist_ok=True)
        layer = scene.view_layers[0]
        layer.use_pass_z = True
        layer.use_pass_diffuse_color = True
        self.group: bpy.types.NodeTree | None = None
        if hasattr(scene, "compositing_node_group"):  # Blender 5.0
            self.group = bpy.data.node_groups.new("GTR capture passes", "CompositorNodeTree")
            scene.compositing_node_group = self.group
            tree = self.group
        else:
            scene.use_nodes = True
            tree = getattr(scene, "node_tree")  # noqa: B009  # Blender 4.x only, not in 5.0's stubs
            for node in list(tree.nodes):
                tree.nodes.remove(node)
        layers = tree.nodes.new("CompositorNodeRLayers")
        layers.scene = scene  # a new node reads the scene in the context (the user's), not the one it belongs to
        layers.layer = layer.name
        # Depth in full floats (it places the surface to a fraction of a pixel), the colours in half floats.
        outputs = {depth: self._output(tree, "32" if depth else "16") for depth in (True, False)}
        self.keys: list[str] = []
        for key, names in self.SOCKETS.items():
            socket = next((layers.outputs[n] for n in names if n in layers.outputs), None)
            if socket is None:
                continue
            output = outputs[key == "depth"]
            if hasattr(output, "file_output_items"):  # Blender 5.0
                output.directory, output.file_name = str(folder), ""
                output.file_output_items.new("FLOAT" if key == "depth" else "RGBA", key)
            else:
                output.base_path = str(folder)
                output.file_slots.new(key)
            tree.links.new(socket, output.inputs[key])
            self.keys.append(key)

    @staticmethod
    def _output(tree: Any, depth: str) -> Any:
        """A File Output node writing OpenEXR at `depth` bits ("16" or "32"), with no inputs yet."""
        output = tree.nodes.new("CompositorNodeOutputFile")
        if hasattr(output.format, "media_type"):
            output.format.media_type = "IMAGE"
        output.format.file_format = "OPEN_EXR"
        output.format.color_depth = depth
        if hasattr(output, "file_output_items"):  # Blender 5.0
            output.file_output_items.clear()
        else:
            output.file_slots.clear()
        return output

    def read(self) -> dict[str, np.ndarray]:
        """The last render's passes by key (`SOCKETS`) as (H, W, C) arrays: "albedo" linear, "depth" in Blender
        units (1e10 on the background), the AOVs "base", "pbr" and "emission" (multiplied by the pixels'
        coverage, as Blender filters them); its files are deleted."""
        found: dict[str, np.ndarray] = {}
        for key in self.keys:
            files = sorted(self.folder.glob(f"{key}*.exr"))  # 4.2 appends the frame number
            if files:
                found[key] = _read_exr(files[-1])
            for file in files:
                file.unlink()
        return found

    def close(self) -> None:
        if self.group is not None:
            bpy.data.node_groups.remove(self.group)
            self.group = None
        for file in self.folder.glob("*.exr"):
            file.unlink()
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def placement(source: bpy.types.Object, normalization: Normalization, beside: bool) -> tuple[Matrix, Matrix]:
    """(matrix_world for the result, backend frame -> the result's local frame): the result takes the source's
    location, rotation and scale, so with `beside` off it lies exactly on the source; with it on it is moved
    along world X by 1.2 times the captured width (the bounding sphere's diameter)."""
    to_local = source.matrix_world.inverted_safe() @ normalization.inverse
    width = 2 * normalization.radius
    offset = Matrix.Translation((1.2 * width, 0.0, 0.0)) if beside else Matrix.Identity(4)
    return offset @ source.matrix_world, to_local
