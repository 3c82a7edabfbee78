"""Mesh files: GLB (embedded PNG texture, PBR base colour), OBJ + MTL + PNG, PLY; via trimesh.

Vertices are written in the world frame of `gtr_backend` (Y up, the input cameras' frame), which is glTF's
frame too, so the file lines up with the source when imported. UVs are v-up here; trimesh converts them
for glTF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from trimesh.exchange.obj import export_obj
from trimesh.visual import ColorVisuals, TextureVisuals
from trimesh.visual.material import PBRMaterial

from ..errors import GTRError
from ..mesh.mesh import Mesh

FORMATS = (".glb", ".obj", ".ply")


def to_trimesh(mesh: Mesh) -> trimesh.Trimesh:
    """A `trimesh.Trimesh` with the texture (as a PBR material) or the vertex colours."""
    vertices = mesh.vertices.detach().cpu().numpy().astype(np.float64)
    faces = mesh.faces.cpu().numpy()
    visual: ColorVisuals | TextureVisuals | None = None
    if mesh.uv is not None and mesh.texture is not None:
        image = Image.fromarray((mesh.texture.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8))
        material = PBRMaterial(name="gtr_texture", baseColorTexture=image, metallicFactor=0.0, roughnessFactor=0.9)
        visual = TextureVisuals(uv=mesh.uv.detach().cpu().numpy(), material=material)
    elif mesh.vertex_colors is not None:
        rgb = (mesh.vertex_colors.detach().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        visual = ColorVisuals(vertex_colors=np.concatenate([rgb, np.full_like(rgb[:, :1], 255)], axis=1))
    return trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)


def write_mesh(mesh: Mesh, path: Path | str) -> list[Path]:
    """Write `mesh` to `path` (.glb, .obj or .ply, by suffix); returns the files written (OBJ: + .mtl + .png)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GTRError(f"{path}: unknown mesh format {suffix!r}; use one of {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise GTRError(f"{path}: the folder {path.parent} does not exist")
    scene_mesh = to_trimesh(mesh)
    if suffix == ".obj":
        text, files = export_obj(scene_mesh, include_texture=True, return_texture=True, mtl_name=f"{path.stem}.mtl")
        path.write_text(text)
        written = [path]
        for name, data in files.items():
            (path.parent / name).write_bytes(data)
            written.append(path.parent / name)
        return written
    scene_mesh.export(str(path))
    return [path]
