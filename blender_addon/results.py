"""Put a finished reconstruction into the scene as one mesh object (all or nothing), and read back what a
result remembers.

A result is a new object in the "GTR Results" collection, named after its source ("Source GTR"); running
again, with other settings, adds the next version beside the old ones ("Source GTR v2") and never replaces
one. It keeps, as custom properties, its job folder (the input views, the mesh, the refined colour field), the
settings and weights it was made with, the backend's timings and its fidelity score (the worst input view's
mask IoU and the PSNR inside the masks: how faithfully it reproduces the views it came from), and the matrix
from the backend frame to its own local frame (for Bake to Active). Its material is a Principled BSDF with the
base-colour texture (or the vertex colours) and, when there is one, a tangent-space normal map; it is shaded
smooth except across creases sharper than `CREASE_DEG`; its origin is the centre of its base (the middle of
its bounding box's bottom face, in its own frame), so it stands on whatever it is put on.

A job made with the views' material pass has a metallic-roughness texture too (glTF's packing: G roughness, B
metallic), which the material reads through a Separate Color node into the Principled BSDF's Roughness and
Metallic (the pattern Blender's glTF exporter writes back as `metallicRoughnessTexture`), and an emission
texture, which drives Emission Color. A job with levels of detail becomes a collection named after the result
holding `NAME_LOD0`, `NAME_LOD1`, ... (the names game engines import as a chain), every level at the same place
and only the first shown in the viewport.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import bpy
import numpy as np
from mathutils import Matrix

from .contract import contract
from .frames import transform_points

JOB_PROPERTY = "gtr_job"  # the job folder (views, mesh, colour field)
BASE_NAME_PROPERTY = "gtr_base_name"  # the name versions share ("Source GTR")
VERSION_PROPERTY = "gtr_version"  # 1, 2, ... among the results of that name
SETTINGS_PROPERTY = "gtr_settings"  # JSON: the reconstruction's options
WEIGHTS_PROPERTY = "gtr_weights"  # the weights file's name
TIMINGS_PROPERTY = "gtr_timings"  # JSON: seconds per backend stage
MASK_IOU_PROPERTY = "gtr_fidelity_mask_iou"  # the worst input view's mask IoU
PSNR_PROPERTY = "gtr_fidelity_psnr"  # dB inside the input masks (absent when none could be measured)
HELD_OUT_PSNR_PROPERTY = "gtr_fidelity_held_out_psnr"  # dB on views kept out of the fit (absent when none were)
HELD_OUT_IOU_PROPERTY = "gtr_fidelity_held_out_mask_iou"
PROBLEM_PROPERTY = "gtr_fails_inputs"  # how the result fails the views it was made from (absent: it does not)
FRAME_PROPERTY = "gtr_backend_to_local"  # 16 floats, row by row: backend frame -> the object's local frame
ORIGIN_PROPERTY = "gtr_origin"  # where the origin was moved (the base centre), in the frame it was placed in
RESULTS_COLLECTION = "GTR Results"
CREASE_DEG = 50.0  # edges where the surface turns by more than this are shaded sharp
BASE_COLOR_NODE = "GTR Base Color"
NORMAL_MAP_NODE = "GTR Normal Map"
MATERIAL_NODE = "GTR Metallic Roughness"
EMISSION_NODE = "GTR Emission"
LOD_PROPERTY = "gtr_lod"  # the level of detail (0, 1, ...) of a result in a chain
COLOR_ATTRIBUTE = "Color"


def read_mesh(job: Path, level: int = 0) -> dict[str, np.ndarray]:
    """The job's mesh.npz (of level of detail `level`; no pickles): vertices (V, 3) backend frame, faces (F, 3),
    and uv (V, 2) or colors (V, 3)."""
    with np.load(job / contract.job_lod_file(contract.JOB_ARRAYS, level), allow_pickle=False) as data:
        arrays = {name: np.asarray(data[name]) for name in data.files}
    arrays["vertices"] = arrays["vertices"].astype(np.float64)
    arrays["faces"] = arrays["faces"].astype(np.int64)
    return arrays


def weld(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The job's vertices, split along UV seams, made one again where they share a position: the positions
    (W, 3), sorted, and each job vertex's index among them (V,)."""
    positions, index = np.unique(arrays["vertices"], axis=0, return_inverse=True)
    return positions, index.reshape(-1)


def vertex_positions(obj: bpy.types.Object) -> np.ndarray:
    """(V, 3) the vertex coordinates of a mesh object's own mesh (no modifiers), in its local frame."""
    mesh = cast(bpy.types.Mesh, obj.data)
    points = np.zeros(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", points)
    return points.reshape(-1, 3)


def read_manifest(job: Path) -> dict[str, Any]:
    """The job's job.json (`contract.JobManifest`: settings, weights, timings, fidelity), or {} for a job made
    before it held them."""
    return contract.read_job_manifest(job) or {}


def _material(
    name: str,
    image: bpy.types.Image | None,
    normals: bpy.types.Image | None,
    pbr: bpy.types.Image | None = None,
    emission: bpy.types.Image | None = None,
) -> bpy.types.Material:
    """Principled BSDF with the base-colour texture (or the vertex colours when `image` is None), a
    tangent-space Normal Map node when there is a normal map, roughness and metallic from the metallic-roughness
    texture `pbr` (else a matte 0.8) and the emission texture's colour."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    tree = material.node_tree
    shader = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    if image is not None:
        texture = tree.nodes.new("ShaderNodeTexImage")
        texture.image = image
    else:
        texture = tree.nodes.new("ShaderNodeVertexColor")
        texture.layer_name = COLOR_ATTRIBUTE
    texture.name = texture.label = BASE_COLOR_NODE
    texture.location = (-400, 300)
    tree.links.new(texture.outputs["Color"], shader.inputs["Base Color"])
    shader.inputs["Roughness"].default_value = 0.8
    if pbr is not None:
        pbr.colorspace_settings.name = "Non-Color"
        values = tree.nodes.new("ShaderNodeTexImage")
        values.name = values.label = MATERIAL_NODE
        values.image = pbr
        values.location = (-700, 100)
        split = tree.nodes.new("ShaderNodeSeparateColor")
        split.location = (-400, 50)
        tree.links.new(values.outputs["Color"], split.inputs["Color"])
        tree.links.new(split.outputs[1], shader.inputs["Roughness"])  # glTF: G roughness, B metallic
        tree.links.new(split.outputs[2], shader.inputs["Metallic"])
    if emission is not None:
        glow = tree.nodes.new("ShaderNodeTexImage")
        glow.name = glow.label = EMISSION_NODE
        glow.image = emission
        glow.location = (-700, -350)
        colour = next(shader.inputs[n] for n in ("Emission Color", "Emission") if n in shader.inputs)
        tree.links.new(glow.outputs["Color"], colour)
        if "Emission Strength" in shader.inputs:
            shader.inputs["Emission Strength"].default_value = 1.0
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


def results_collection(context: bpy.types.Context, created: list[tuple[object, object]]) -> bpy.types.Collection:
    """The scene's "GTR Results" collection (made, and recorded in `created`, if it is not there)."""
    scene = context.scene
    assert scene is not None
    collection = bpy.data.collections.get(RESULTS_COLLECTION)
    if collection is None:
        collection = bpy.data.collections.new(RESULTS_COLLECTION)
        created.append((collection, bpy.data.collections))
    if collection not in scene.collection.children_recursive:  # e.g. made in another scene
        scene.collection.children.link(collection)
    return collection


def next_version(base_name: str) -> int:
    """One more than the highest version of the results named `base_name` (1 for the first)."""
    versions = [int(o.get(VERSION_PROPERTY, 0)) for o in bpy.data.objects if o.get(BASE_NAME_PROPERTY) == base_name]
    return max(versions, default=0) + 1


def _fill_mesh(
    mesh: bpy.types.Mesh, local: np.ndarray, faces: np.ndarray, arrays: dict[str, np.ndarray], flip: bool
) -> None:
    """Fill an empty Blender mesh: welded vertices `local` (V, 3), `faces` (F, 3) into them, the job's uv per
    corner or colours per vertex; shaded smooth except across creases."""
    mesh.vertices.add(len(local))
    mesh.vertices.foreach_set("co", local.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    if "uv" in arrays:  # before a flip, which reverses every face's corners together with their uv
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", arrays["uv"][arrays["faces"].ravel()].astype(np.float32).ravel())
    if flip:
        mesh.flip_normals()
    mesh.update()
    mesh.validate()
    if "colors" in arrays:
        colors = np.ones((len(local), 4), dtype=np.float32)  # a vertex no face uses keeps white
        colors[faces.ravel()] = np.concatenate(
            [arrays["colors"][arrays["faces"].ravel()], np.ones((faces.size, 1))], axis=1
        )
        attribute = mesh.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
        attribute.data.foreach_set("color", colors.ravel())  # type: ignore[attr-defined]
    mesh.shade_smooth()
    if hasattr(mesh, "set_sharp_from_angle"):  # Blender 4.1+
        mesh.set_sharp_from_angle(angle=math.radians(CREASE_DEG))


def add_result(
    context: bpy.types.Context, job: Path, name: str, matrix_world: Matrix, backend_to_local: Matrix
) -> bpy.types.Object:
    """A new result, the next version of `name`, in the "GTR Results" collection: the job's mesh mapped by
    `backend_to_local`, its textures packed, its origin moved to its base centre, placed at `matrix_world`
    (where the backend frame's mapping puts it; moving the origin does not move the surface). With levels of
    detail, a collection of that name holds NAME_LOD0, NAME_LOD1, ... (LOD0 is returned). If anything fails,
    whatever was created is removed again."""
    version = next_version(name)
    label = name if version == 1 else f"{name} v{version}"
    manifest = read_manifest(job)
    levels = 1
    while (job / contract.job_lod_file(contract.JOB_ARRAYS, levels)).is_file():
        levels += 1
    created: list[tuple[object, object]] = []
    try:
        collection = results_collection(context, created)
        if levels > 1:
            chain = bpy.data.collections.new(label)
            created.append((chain, bpy.data.collections))
            collection.children.link(chain)
            collection = chain
        first: bpy.types.Object | None = None
        base: np.ndarray | None = None
        for level in range(levels):
            title = f"{label}_LOD{level}" if levels > 1 else label
            obj, base = _add_level(job, level, title, backend_to_local, created, base)
            obj.matrix_world = matrix_world @ Matrix.Translation(base.tolist())
            _remember(obj, job, name, version, manifest, Matrix.Translation((-base).tolist()) @ backend_to_local)
            obj[ORIGIN_PROPERTY] = base.tolist()
            if levels > 1:
                obj[LOD_PROPERTY] = level
            collection.objects.link(obj)
            if level:
                obj.hide_set(True)  # every level in one place: the first one shows
            first = first or obj
        assert first is not None
        return first
    except Exception:
        for datablock, kind in reversed(created):
            kind.remove(datablock)  # type: ignore[attr-defined]
        raise


def _add_level(
    job: Path,
    level: int,
    title: str,
    backend_to_local: Matrix,
    created: list[tuple[object, object]],
    base: np.ndarray | None,
) -> tuple[bpy.types.Object, np.ndarray]:
    """Level `level` of a job as a new object named `title` (not yet linked or placed) with its material, and
    the base centre its vertices were moved by (`base`, or its own when None: the first level's)."""
    arrays = read_mesh(job, level)
    m = np.array(backend_to_local)
    # The job's vertices are split along UV seams; Blender keeps UVs per face corner, so the vertices at one
    # position become one again: smooth shading then runs across the seams, as in the GLB.
    welded, corner_vertex = weld(arrays)
    faces = corner_vertex[arrays["faces"]]
    local = transform_points(welded, m)
    if base is None:
        low, high = local.min(axis=0), local.max(axis=0)
        base = np.array([(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]])
    local = local - base
    mesh = bpy.data.meshes.new(title)
    created.append((mesh, bpy.data.meshes))
    _fill_mesh(mesh, local, faces, arrays, np.linalg.det(m[:3, :3]) < 0)
    images: dict[str, bpy.types.Image | None] = {}
    files = {
        "texture": contract.JOB_TEXTURE,
        "roughness metallic": contract.JOB_MATERIAL,
        "emission": contract.JOB_EMISSION,
        "normal map": contract.JOB_NORMALS,
    }
    for kind, file in files.items():
        path = contract.job_lod_file(file, level) if kind != "normal map" else file
        images[kind] = None
        if "uv" in arrays and (job / path).is_file() and (kind != "normal map" or level == 0):
            images[kind] = load_texture(job, f"{title} {kind}", path)
            created.append((images[kind], bpy.data.images))
    material = _material(
        f"{title} material",
        images["texture"],
        images["normal map"],
        images["roughness metallic"],
        images["emission"],
    )
    created.append((material, bpy.data.materials))
    mesh.materials.append(material)
    obj = bpy.data.objects.new(title, mesh)
    created.append((obj, bpy.data.objects))
    return obj, base


def lod_chain(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """The levels of detail a result belongs to, LOD0 first (just the object itself when it has none)."""
    if obj.get(LOD_PROPERTY) is None:
        return [obj]
    for collection in obj.users_collection:
        chain = [
            other
            for other in collection.objects
            if other.get(LOD_PROPERTY) is not None and other.get(JOB_PROPERTY) == obj.get(JOB_PROPERTY)
        ]
        if len(chain) > 1:
            return sorted(chain, key=lambda other: int(other[LOD_PROPERTY]))
    return [obj]


def _remember(
    obj: bpy.types.Object, job: Path, name: str, version: int, manifest: dict[str, Any], to_local: Matrix
) -> None:
    obj[JOB_PROPERTY] = str(job)
    obj[BASE_NAME_PROPERTY] = name
    obj[VERSION_PROPERTY] = version
    obj[SETTINGS_PROPERTY] = json.dumps(manifest.get("options", {}), sort_keys=True)
    obj[WEIGHTS_PROPERTY] = str(manifest.get("weights_name") or "")
    obj[TIMINGS_PROPERTY] = json.dumps(manifest.get("timings", {}))
    obj[FRAME_PROPERTY] = [float(to_local[i][j]) for i in range(4) for j in range(4)]
    set_fidelity(obj, manifest.get("fidelity") or {})


def set_fidelity(obj: bpy.types.Object, fidelity: Mapping[str, Any]) -> None:
    """Store a fidelity score from the backend (`mask_iou`, `psnr`, and on held-out views `held_out_mask_iou`,
    `held_out_psnr`) on a result."""
    for key, name in (
        ("mask_iou", MASK_IOU_PROPERTY),
        ("psnr", PSNR_PROPERTY),
        ("held_out_mask_iou", HELD_OUT_IOU_PROPERTY),
        ("held_out_psnr", HELD_OUT_PSNR_PROPERTY),
    ):
        if fidelity.get(key) is not None:
            obj[name] = float(fidelity[key])
    problem = contract.fidelity_problem(fidelity) if fidelity else None
    if problem:  # marked, so that the panel keeps saying it
        obj[PROBLEM_PROPERTY] = problem
    elif obj.get(PROBLEM_PROPERTY) is not None:
        del obj[PROBLEM_PROPERTY]


def placement(obj: bpy.types.Object) -> Matrix:
    """The matrix a result was placed at (where the backend frame's mapping puts it), before its origin was
    moved to its base: `matrix_world` without that move."""
    offset = obj.get(ORIGIN_PROPERTY)
    return obj.matrix_world @ Matrix.Translation([-float(v) for v in offset] if offset else (0.0, 0.0, 0.0))


def backend_to_local(obj: bpy.types.Object) -> Matrix | None:
    """The matrix from the backend frame of a result's job to the result's local frame (None if unknown)."""
    values = obj.get(FRAME_PROPERTY)
    if values is None or len(values) != 16:
        return None
    return Matrix([list(values[i : i + 4]) for i in range(0, 16, 4)])


def _stored_json(obj: bpy.types.Object, key: str) -> dict[str, Any]:
    try:
        value = json.loads(str(obj.get(key) or "{}"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def summary(obj: bpy.types.Object) -> list[str]:
    """Lines the panel shows for a result: version, fidelity, settings, weights and backend time (what a
    result made before these were kept does not have is left out)."""
    if obj.get(BASE_NAME_PROPERTY) is None:
        return []
    lines = [f"{obj[BASE_NAME_PROPERTY]}, version {obj.get(VERSION_PROPERTY, 1)}"]
    if obj.get(PROBLEM_PROPERTY):
        lines.append(f"Does not match its views: {obj[PROBLEM_PROPERTY]}")
    iou, psnr = obj.get(MASK_IOU_PROPERTY), obj.get(PSNR_PROPERTY)
    scores = ([f"mask IoU {iou:.3f}"] if iou is not None else []) + (
        [f"PSNR {psnr:.1f} dB"] if psnr is not None else []
    )
    if scores:
        lines.append("fidelity: " + ", ".join(scores))
    held_iou, held_psnr = obj.get(HELD_OUT_IOU_PROPERTY), obj.get(HELD_OUT_PSNR_PROPERTY)
    if held_psnr is not None or held_iou is not None:  # the honest one: views the result was not made from
        held = ([f"mask IoU {held_iou:.3f}"] if held_iou is not None else []) + (
            [f"PSNR {held_psnr:.1f} dB"] if held_psnr is not None else []
        )
        lines.append("on held-out views: " + ", ".join(held))
    settings = _stored_json(obj, SETTINGS_PROPERTY)
    if settings:
        texture = "vertex colours" if settings.get("vertex_colors") else f"{settings.get('texture_size')} px"
        steps = settings.get("refine_steps")
        faces = f"{len(obj.data.polygons)} faces" + (" (auto)" if settings.get("auto_faces") else "")
        chain = lod_chain(obj)
        words = [faces + (f", {len(chain)} LODs" if len(chain) > 1 else ""), texture]
        if material_node(obj, MATERIAL_NODE) is not None:
            words.append("roughness and metallic")
        lines.append(", ".join(words + ([f"{steps} refinement steps"] if steps is not None else [])))
    timings = _stored_json(obj, TIMINGS_PROPERTY)
    weights = obj.get(WEIGHTS_PROPERTY)
    if weights or timings:
        seconds = sum(float(v) for v in timings.values() if isinstance(v, int | float))
        lines.append(f"{weights or 'weights'}, {seconds:.1f} s in the backend")
    return lines


def material_node(obj: bpy.types.Object, name: str) -> bpy.types.Node | None:
    """The node named `name` in the object's materials, or None."""
    for slot in obj.material_slots:
        if slot.material and slot.material.node_tree and name in slot.material.node_tree.nodes:
            return slot.material.node_tree.nodes[name]
    return None


def texture_node(obj: bpy.types.Object) -> bpy.types.ShaderNodeTexImage | None:
    """The base-colour image node of a result (not its normal map's; None for vertex colours)."""
    for slot in obj.material_slots:
        if slot.material and slot.material.node_tree:
            nodes = slot.material.node_tree.nodes
            named = nodes.get(BASE_COLOR_NODE)
            if named is not None:
                return named if named.bl_idname == "ShaderNodeTexImage" else None
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


def replace_vertex_colors(obj: bpy.types.Object, job: Path) -> None:
    """Give a vertex-coloured result the job's new colours (same mesh; undo restores the old ones); a
    `ValueError` in words when the result no longer is the job's mesh."""
    arrays = read_mesh(job)
    if "colors" not in arrays:
        raise ValueError(f"{obj.name} has lost its texture node, and its job has a texture: reconstruct it again")
    welded, corner_vertex = weld(arrays)
    colors = np.ones((len(welded), 4), dtype=np.float32)
    colors[corner_vertex, :3] = arrays["colors"]
    mesh, frame = obj.data, backend_to_local(obj)
    expected = transform_points(welded, frame) if frame is not None else None
    if (
        expected is None
        or expected.shape != (len(mesh.vertices), 3)
        or not np.allclose(vertex_positions(obj), expected, atol=1e-4)
    ):
        raise ValueError(f"{obj.name} was edited since it was made: its colours can only go onto its own mesh")
    attribute = mesh.color_attributes.get(COLOR_ATTRIBUTE)
    if attribute is None:
        raise ValueError(f"{obj.name} has no colour attribute named {COLOR_ATTRIBUTE!r} any more: rename it back")
    attribute.data.foreach_set("color", colors.ravel())
    mesh.update()
