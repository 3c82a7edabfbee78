"""Bake to Active: a GTR result's colours (its refined colour field, under its input views' own colours) baked
onto the active mesh's own active UV layer, into a new image and material. Select the GTR result, then the
target mesh (active), as for Blender's "Selected to Active" bakes. The target's geometry and UVs are never
changed: the new material goes into its active material slot only (a new slot when it has none); its other
slots keep their materials, and the replaced one stays in the file (undo restores it). While the button is
disabled its tooltip says why (`bake_problem`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

import bpy
import numpy as np
from mathutils import Matrix

from ..contract import contract
from ..frames import transform_points
from ..paths import new_job_folder
from ..preferences import preferences, texture_size
from ..props import status
from ..results import backend_to_local, load_texture, read_mesh, vertex_positions
from .base import BackendJobOperator, Result
from .refine_texture import job_of


def bake_source(context: bpy.types.Context) -> bpy.types.Object | None:
    """The one selected GTR result that is not the active object (None if there is none or several)."""
    found = [o for o in context.selected_objects if o is not context.active_object and job_of(o) is not None]
    return found[0] if len(found) == 1 else None


def bake_problem(context: bpy.types.Context) -> str | None:
    """Why Bake to Active cannot run with this selection (a sentence for its tooltip), or None when it can."""
    target = context.active_object
    if status(context).running:
        return "A GTR job is running: wait for it to finish or cancel it"
    if target is None or target.type != "MESH":
        return "Select the GTR result, then shift-select your mesh so that it is the active object"
    if job_of(target) is not None:
        return "The active object is a GTR result: select it first, then shift-select your own mesh (the target)"
    if target.data.uv_layers.active is None:
        return f"{target.name} has no UV map: unwrap it first (UV > Unwrap)"
    if bake_source(context) is None:
        return f"Select one GTR result besides {target.name} (select the result, then shift-select {target.name})"
    return None


def target_arrays(target: bpy.types.Object, to_backend: Matrix, depsgraph: Any) -> dict[str, np.ndarray]:
    """The target as the backend reads it (`contract.BAKE_TARGET`): its evaluated triangles with a vertex per
    corner, vertices (3T, 3) in the result's backend frame, faces (T, 3), uv (3T, 2) of its active UV layer."""
    evaluated = target.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        if mesh.uv_layers.active is None:
            raise BakeError(f"{target.name} has no UV map after its modifiers; unwrap it first")
        mesh.calc_loop_triangles()
        if not len(mesh.loop_triangles):
            raise BakeError(f"{target.name} has no faces after its modifiers; bake onto a mesh with faces")
        loops = np.zeros(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("loops", loops)
        corners = np.zeros(len(mesh.loops), dtype=np.int64)
        mesh.loops.foreach_get("vertex_index", corners)
        points = np.zeros(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", points)
        uv = np.zeros(len(mesh.loops) * 2, dtype=np.float64)
        mesh.uv_layers.active.data.foreach_get("uv", uv)
    finally:
        evaluated.to_mesh_clear()
    vertices = transform_points(points.reshape(-1, 3)[corners[loops]], to_backend @ target.matrix_world)
    return {
        "vertices": vertices.astype(np.float32),
        "faces": np.arange(len(loops), dtype=np.int32).reshape(-1, 3),
        "uv": uv.reshape(-1, 2)[loops].astype(np.float32),
    }


class BakeError(Exception):
    """The target cannot take this result's colours: a message for the user."""


def check_overlap(source: bpy.types.Object, target: bpy.types.Object, points: np.ndarray, job: Path) -> None:
    """A `BakeError` unless the result still is its job's mesh and the target (its points (P, 3) in the job's
    backend frame) lies where the result is: the colours exist only there."""
    frame = backend_to_local(source)
    assert frame is not None
    vertices = read_mesh(job)["vertices"]
    expected = transform_points(vertices, frame)
    low, high = expected.min(axis=0), expected.max(axis=0)
    size = float(np.linalg.norm(high - low)) or 1.0
    current = vertex_positions(source)
    if (
        not len(current)
        or np.abs(current.min(axis=0) - low).max() > 1e-3 * size
        or np.abs(current.max(axis=0) - high).max() > 1e-3 * size
    ):
        raise BakeError(
            f"{source.name} was edited or had its transform applied since it was made; bake from an unedited result"
        )
    # Along every axis, the boxes of the target and of the result overlap by half the shorter one (a flat
    # target, a card, has no volume to compare).
    job_low, job_high = vertices.min(axis=0), vertices.max(axis=0)
    overlap = np.minimum(points.max(axis=0), job_high) - np.maximum(points.min(axis=0), job_low)
    shorter = np.minimum(points.max(axis=0) - points.min(axis=0), job_high - job_low)
    if (overlap < 0.5 * shorter - 0.02 * size).any():
        raise BakeError(
            f"{target.name} is not where {source.name} is: move one onto the other (the colours exist only on the "
            "result's surface), then bake again"
        )


def baked_material(name: str, image: bpy.types.Image, uv_layer: str) -> bpy.types.Material:
    """Principled BSDF whose base colour is `image` on the UV layer named `uv_layer`."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    tree = material.node_tree
    shader = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.location = (-400, 300)
    coordinates = tree.nodes.new("ShaderNodeUVMap")
    coordinates.uv_map = uv_layer
    coordinates.location = (-650, 300)
    tree.links.new(coordinates.outputs["UV"], texture.inputs["Vector"])
    tree.links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    shader.inputs["Roughness"].default_value = 0.8
    return material


class GTR_OT_bake_to_active(BackendJobOperator, bpy.types.Operator):
    """Bake the selected GTR result's colours onto the active mesh's own UV layout, into a new image and a new
    material in its active material slot (its geometry, UVs and other slots stay as they are)"""

    bl_idname = "gtr.bake_to_active"
    bl_label = "Bake to Active"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        problem = bake_problem(context)
        if problem:
            cls.poll_message_set(problem)  # the disabled button's tooltip says why
        return problem is None

    def execute(self, context: bpy.types.Context) -> Result:
        self.target, source = context.active_object, bake_source(context)
        assert self.target is not None and source is not None
        frame = backend_to_local(source)
        if frame is None:
            return self.fail(context, f"{source.name} was made by an older version; reconstruct it again to bake")
        self.uv_layer = self.target.data.uv_layers.active.name
        self.folder = self.new_job = new_job_folder()
        job = job_of(source)
        assert job is not None
        try:
            to_backend = (source.matrix_world @ frame).inverted()
            arrays = target_arrays(self.target, to_backend, context.evaluated_depsgraph_get())
            check_overlap(source, self.target, arrays["vertices"], job)
            np.savez(self.folder / contract.BAKE_TARGET, **arrays)
        except (BakeError, ValueError, RuntimeError, OSError) as error:
            return self.fail(context, str(error).splitlines()[0])
        size = texture_size(preferences(context))
        return self.launch(context, "bake_to", job=str(job), folder=str(self.folder), texture_size=size)

    def on_result(self, context: bpy.types.Context, message: dict[str, Any]) -> None:
        name = f"{self.target.name} GTR bake"
        created: list[tuple[Any, Any]] = []
        try:
            image = load_texture(self.folder, name, contract.BAKE_TEXTURE)
            created.append((image, bpy.data.images))
            material = baked_material(name, image, self.uv_layer)
            created.append((material, bpy.data.materials))
            slots = self.target.material_slots
            if slots:  # the active slot only, as Blender's own material assignments do
                slots[min(int(self.target.active_material_index or 0), len(slots) - 1)].material = material
            else:
                self.target.data.materials.append(material)
        except Exception:
            for datablock, collection in reversed(created):
                collection.remove(datablock)
            raise
        shutil.rmtree(Path(self.folder), ignore_errors=True)  # the image is packed into the .blend
        status(
            context
        ).backend_info = f"baked {cast('contract.BakeToReply', message)['texture_size']} px onto {self.target.name}"
