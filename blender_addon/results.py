"""Put a finished reconstruction into the scene as one textured mesh object (all or nothing)."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from .contract import contract

JOB_PROPERTY = "gtr_job"  # custom property on result objects: the job folder (views, mesh, colour field)


def read_mesh(job: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """vertices (V, 3) in the backend frame, faces (F, 3), uv (V, 2) from the job's mesh.npz (no pickles)."""
    with np.load(job / contract.JOB_ARRAYS, allow_pickle=False) as data:
        return data["vertices"].astype(np.float64), data["faces"].astype(np.int64), data["uv"].astype(np.float64)


def _material(name: str, image: bpy.types.Image) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    tree = material.node_tree
    shader = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.location = (-400, 300)
    tree.links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    shader.inputs["Roughness"].default_value = 0.8
    return material


def load_texture(job: Path, name: str) -> bpy.types.Image:
    image = bpy.data.images.load(str(job / contract.JOB_TEXTURE), check_existing=False)
    image.name = name
    image.pack()  # the texture lives in the .blend, not in the job folder
    return image


def add_result(
    context: bpy.types.Context, job: Path, name: str, matrix_world: Matrix, backend_to_local: Matrix
) -> bpy.types.Object:
    """A new object `name` in the active collection: the job's mesh mapped by `backend_to_local`, its texture
    packed, placed at `matrix_world`. If anything fails, whatever was created is removed again."""
    vertices, faces, uv = read_mesh(job)
    m = np.array(backend_to_local)
    local = vertices @ m[:3, :3].T + m[:3, 3]
    created: list[tuple[object, object]] = []
    try:
        mesh = bpy.data.meshes.new(name)
        created.append((mesh, bpy.data.meshes))
        mesh.vertices.add(len(local))
        mesh.vertices.foreach_set("co", local.astype(np.float32).ravel())
        mesh.loops.add(faces.size)
        mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
        mesh.polygons.add(len(faces))
        mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
        if np.linalg.det(m[:3, :3]) < 0:
            mesh.flip_normals()
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", uv[faces.ravel()].astype(np.float32).ravel())
        mesh.update()
        mesh.validate()
        mesh.shade_smooth()
        image = load_texture(job, f"{name} texture")
        created.append((image, bpy.data.images))
        material = _material(f"{name} material", image)
        created.append((material, bpy.data.materials))
        mesh.materials.append(material)
        obj = bpy.data.objects.new(name, mesh)
        created.append((obj, bpy.data.objects))
        obj.matrix_world = matrix_world
        obj[JOB_PROPERTY] = str(job)
        context.collection.objects.link(obj)
        return obj
    except Exception:
        for datablock, collection in reversed(created):
            collection.remove(datablock)  # type: ignore[attr-defined]
        raise


def texture_node(obj: bpy.types.Object) -> bpy.types.ShaderNodeTexImage | None:
    for slot in obj.material_slots:
        if slot.material and slot.material.node_tree:
            for node in slot.material.node_tree.nodes:
                if node.bl_idname == "ShaderNodeTexImage":
                    return node  # type: ignore[return-value]
    return None


def replace_texture(obj: bpy.types.Object, job: Path) -> bpy.types.Image:
    """Point the object's texture node at the job's new texture.png (packed); the old image stays for undo."""
    node = texture_node(obj)
    if node is None:
        raise ValueError(f"{obj.name} has no image texture node to update")
    old = node.image
    image = load_texture(job, old.name if old else f"{obj.name} texture")
    node.image = image
    return image
