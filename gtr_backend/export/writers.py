"""Mesh files: GLB (embedded PNG texture, PBR base colour), OBJ + MTL + PNG, PLY; via trimesh.

Vertices are written in the world frame of `gtr_backend` (Y up, the input cameras' frame), which is glTF's
frame too, so the file lines up with the source when imported. UVs are v-up here; trimesh converts them
for glTF.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from torch import Tensor
from trimesh.exchange.obj import export_obj
from trimesh.visual import ColorVisuals, TextureVisuals
from trimesh.visual.material import PBRMaterial

from ..files import atomic_write, check_output
from ..mesh.mesh import Mesh

FORMATS = (".glb", ".obj", ".ply")


def _image(texture: Tensor) -> Image.Image:
    """(H, W, 3) in [0, 1] -> an 8-bit RGB image."""
    return Image.fromarray((texture.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8))


def to_trimesh(mesh: Mesh) -> trimesh.Trimesh:
    """A `trimesh.Trimesh` with the texture (as a PBR material, with its normal map if it has one) or the
    vertex colours."""
    vertices = mesh.vertices.detach().cpu().numpy().astype(np.float64)
    faces = mesh.faces.cpu().numpy()
    visual: ColorVisuals | TextureVisuals | None = None
    if mesh.uv is not None and mesh.texture is not None:
        image = _image(mesh.texture)
        normals = _image(mesh.normal_texture) if mesh.normal_texture is not None else None
        material = PBRMaterial(
            name="gtr_texture", baseColorTexture=image, normalTexture=normals, metallicFactor=0.0, roughnessFactor=0.9
        )
        visual = TextureVisuals(uv=mesh.uv.detach().cpu().numpy(), material=material)
    elif mesh.vertex_colors is not None:
        rgb = (mesh.vertex_colors.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        visual = ColorVisuals(vertex_colors=np.concatenate([rgb, np.full_like(rgb[:, :1], 255)], axis=1))
    return trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)


def obj_names(path: Path) -> tuple[str, str]:
    """The MTL and texture file names an OBJ at `path` refers to: its own stem (spaces and other characters
    MTL cannot hold made `_`), so two OBJs in one folder never share a texture."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem) or "mesh"
    return f"{stem}.mtl", f"{stem}_texture"


def write_mesh(mesh: Mesh, path: Path | str) -> list[Path]:
    """Write `mesh` to `path` (.glb, .obj or .ply, by suffix), each file all or nothing (see `files`); returns
    the files written (OBJ: + its .mtl and, when textured, `<name>_texture.png`)."""
    path = check_output(path, FORMATS, "mesh")
    scene_mesh = to_trimesh(mesh)
    if path.suffix.lower() != ".obj":
        return [
            atomic_write(path, lambda temporary: scene_mesh.export(str(temporary), file_type=path.suffix[1:].lower()))
        ]
    mtl, material = obj_names(path)
    if isinstance(scene_mesh.visual, TextureVisuals):
        scene_mesh.visual.material.name = material
    text, files = export_obj(scene_mesh, include_texture=True, return_texture=True, mtl_name=mtl)
    texture_first = sorted(files.items(), key=lambda item: item[0] == mtl)  # the MTL names the texture
    written = [atomic_write(path.parent / name, data) for name, data in texture_first]
    return [*written, atomic_write(path, text)]  # the OBJ, which names the others, last
