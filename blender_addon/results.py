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


BASE_COLOR_NODE = "GTR Base Color"
NORMAL_MAP_NODE = "GTR Normal Map"


def _material(name: str, image: bpy.types.Image, normals: bpy.types.Image | None = None) -> bpy.types.Material:
    """Principled BSDF with the base-colour texture, and a tangent-space Normal Map node when there is one."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    tree = material.node_tree
    shader = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    texture = tree.nodes.new("ShaderNodeTexImage")
    texture.name = texture.label = BASE_COLOR_NODE
    texture.image = image
    texture.location = (-400, 300)
    tree.links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    shader.inputs["Roughness"].default_value = 0.8
    if normals is not None:
        normals.colorspace_settings.name = "Non-Color"
        detail = tree.nodes.new("ShaderNodeTexImage")
        detail.name = detail.label = NORMAL_MAP_NODE
        detail.image = normals
        detail.location = (-600, -100)
        mapping = tree.nodes.new("ShaderNodeNormalMap")
        mapping.space = "TANGENT"
        mapping.uv_map = "UVMap"
        mapping.location = (-250, -100)
        tree.links.new(detail.outputs["Color"], mapping.inputs["Color"])
        tree.links.new(mapping.outputs["Normal"], shader.inputs["Normal"])
    return material


def load_texture(job: Path, name: str, file: str = contract.JOB_TEXTURE) -> bpy.types.Image:
    image = bpy.data.images.load(str(job / file), check_existing=False)
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
    # The job's vertices are split along UV seams; Blender keeps UVs per face corner, so the vertices at one
    # position become one again: smooth shading then runs across the seams, as in the GLB.
    welded, corner_vertex = np.unique(vertices, axis=0, return_inverse=True)
    corner_vertex = corner_vertex.reshape(-1)[faces]
    local = welded @ m[:3, :3].T + m[:3, 3]
    created: list[tuple[object, object]] = []
    try:
        mesh = bpy.data.meshes.new(name)
        created.append((mesh, bpy.data.meshes))
        mesh.vertices.add(len(local))
        mesh.vertices.foreach_set("co", local.astype(np.float32).ravel())
        mesh.loops.add(faces.size)
        mesh.loops.foreach_set("vertex_index", corner_vertex.astype(np.int32).ravel())
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
        normals = None
        if (job / contract.JOB_NORMALS).is_file():
            normals = load_texture(job, f"{name} normal map", contract.JOB_NORMALS)
            created.append((normals, bpy.data.images))
        material = _material(f"{name} material", image, normals)
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
    """The base-colour image node of a result (not its normal map's)."""
    for slot in obj.material_slots:
        if slot.material and slot.material.node_tree:
            nodes = slot.material.node_tree.nodes
            named = nodes.get(BASE_COLOR_NODE)
            if named is not None:
                return named
            for node in nodes:  # results made before the nodes were named
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
