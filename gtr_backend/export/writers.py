"""Mesh files: GLB (embedded PNG texture, PBR base colour), OBJ + MTL + PNG, PLY; via trimesh.

Vertices are written in the world frame of `gtr_backend` (Y up, the input cameras' frame), which is glTF's
frame too, so the file lines up with the source when imported. UVs are v-up here; trimesh converts them
for glTF.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from torch import Tensor
from trimesh.exchange.obj import export_obj
from trimesh.visual import ColorVisuals, TextureVisuals
from trimesh.visual.material import PBRMaterial

from ..errors import GTRError
from ..files import atomic_write, check_output
from ..mesh.mesh import Mesh
from ..pixels import to_uint8
from .bake import smooth_normals

FORMATS = (".glb", ".obj", ".ply")
TEXTURE_FORMATS = ("png", "jpeg")
# Stand-ins trimesh writes; `_glb` swaps in the textures.
PLACEHOLDER_SIZES = {"base": (1, 1), "normal": (2, 1), "material": (3, 1), "emission": (4, 1)}
DATA_TEXTURES = ("normal", "material")  # kept lossless (PNG) whatever the colour textures' format


def _image(texture: Tensor) -> Image.Image:
    """(H, W, 3) in [0, 1] -> an 8-bit RGB image."""
    return Image.fromarray(to_uint8(texture).cpu().numpy())


def _textures(mesh: Mesh) -> dict[str, Tensor | None]:
    """A textured mesh's textures by kind (those it lacks None)."""
    return {
        "base": mesh.texture,
        "normal": mesh.normal_texture,
        "material": mesh.material_texture,
        "emission": mesh.emission_texture,
    }


def _placeholder_size(kind: str, level: int) -> tuple[int, int]:
    """The size of the stand-in image of texture `kind` of level of detail `level`: one size per texture."""
    width, height = PLACEHOLDER_SIZES[kind]
    return (width, height + 2 * level)


def to_trimesh(mesh: Mesh, placeholders: bool = False, level: int = 0) -> trimesh.Trimesh:
    """A `trimesh.Trimesh` with the texture (as a PBR material, with its normal map if it has one) or the
    vertex colours. `placeholders`: tiny stand-in images (`_placeholder_size`, of level of detail `level`)
    instead of the textures, for a writer that puts the encoded textures in itself (`_glb`)."""
    vertices = mesh.vertices.detach().cpu().numpy().astype(np.float64)
    faces = mesh.faces.cpu().numpy()
    visual: ColorVisuals | TextureVisuals | None = None

    def stand_in(kind: str) -> Image.Image:
        return Image.new("RGB", _placeholder_size(kind, level))

    if mesh.uv is not None and mesh.texture is not None:
        images = {
            kind: (stand_in(kind) if placeholders else _image(texture)) if texture is not None else None
            for kind, texture in _textures(mesh).items()
        }
        pbr = images["material"] is not None
        material = PBRMaterial(
            name="gtr_texture",
            baseColorTexture=images["base"],
            normalTexture=images["normal"],
            metallicRoughnessTexture=images["material"],
            emissiveTexture=images["emission"],
            emissiveFactor=[1.0, 1.0, 1.0] if images["emission"] is not None else None,
            # Without a material texture: matte, not metal (what a capture without PBR passes shows).
            metallicFactor=1.0 if pbr else 0.0,
            roughnessFactor=1.0 if pbr else 0.9,
        )
        visual = TextureVisuals(uv=mesh.uv.detach().cpu().numpy(), material=material)
    elif mesh.vertex_colors is not None:
        rgb = to_uint8(mesh.vertex_colors).cpu().numpy()
        visual = ColorVisuals(vertex_colors=np.concatenate([rgb, np.full_like(rgb[:, :1], 255)], axis=1))
    # Smooth normals shared across UV seams (a file without normals is shaded flat, facet by facet), the same
    # ones a normal map is baked against.
    shading = smooth_normals(mesh).detach().cpu().numpy().astype(np.float64) if mesh.num_faces else None
    return trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, vertex_normals=shading, process=False)


def lod_name(path: Path) -> str:
    """The name a file's levels of detail take (`<name>_LOD0`, ...): its stem, as a node name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", path.stem) or "mesh"


def obj_names(path: Path) -> tuple[str, str]:
    """The MTL and texture file names an OBJ at `path` refers to: its own stem (spaces and other characters
    MTL cannot hold made `_`), so two OBJs in one folder never share a texture."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem) or "mesh"
    return f"{stem}.mtl", f"{stem}_texture"


def _encode(image: Image.Image, texture_format: str) -> tuple[bytes, str]:
    """(file bytes, MIME type): PNG at a fast compression level, or JPEG at quality 90 (smaller, lossy)."""
    buffer = io.BytesIO()
    if texture_format == "jpeg":
        image.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue(), "image/jpeg"
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), "image/png"


def _glb(mesh: Mesh, texture_format: str, lods: Sequence[Mesh] = (), name: str = "mesh") -> bytes:
    """The GLB of `mesh` (and its levels of detail, as nodes `name`_LOD0, `name`_LOD1, ...) with each texture
    encoded once, in `texture_format`: trimesh writes the file around tiny placeholder images, whose buffer
    views then take the real encoded textures (the binary chunk is laid out again, every view 4-byte
    aligned)."""
    chain = [mesh, *lods]
    scene = trimesh.Scene()
    for level, part in enumerate(chain):
        label = f"{name}_LOD{level}" if lods else name
        scene.add_geometry(to_trimesh(part, placeholders=True, level=level), node_name=label, geom_name=label)
    glb = trimesh.exchange.gltf.export_glb(scene, include_normals=True)
    textures = {}
    for level, part in enumerate(chain):
        if part.uv is None or part.texture is None:
            continue
        for kind, image in _textures(part).items():
            if image is not None:
                encoding = "png" if kind in DATA_TEXTURES else texture_format
                textures[_placeholder_size(kind, level)] = (image, encoding)
    if not textures:
        return glb
    json_length = struct.unpack_from("<I", glb, 12)[0]
    tree = json.loads(glb[20 : 20 + json_length])
    binary = glb[20 + json_length + 8 :]
    views = [binary[v.get("byteOffset", 0) : v.get("byteOffset", 0) + v["byteLength"]] for v in tree["bufferViews"]]
    for image in tree.get("images", []):
        with Image.open(io.BytesIO(views[image["bufferView"]])) as placeholder:
            size = placeholder.size
        texture, encoding = textures[size]
        data, mime = _encode(_image(texture), encoding)
        views[image["bufferView"]], image["mimeType"] = data, mime
    chunk = b""
    for view, data in zip(tree["bufferViews"], views, strict=True):
        view["byteOffset"], view["byteLength"] = len(chunk), len(data)
        chunk += data + b"\0" * (-len(data) % 4)
    tree["buffers"] = [{"byteLength": len(chunk)}]
    text = json.dumps(tree, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(chunk)
    header = struct.pack("<4sII", b"glTF", 2, total)
    return header + struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(chunk), b"BIN\0") + chunk


def write_mesh(mesh: Mesh, path: Path | str, texture_format: str = "png", lods: Sequence[Mesh] = ()) -> list[Path]:
    """Write `mesh` to `path` (.glb, .obj or .ply, by suffix), each file all or nothing (see `files`); returns
    the files written (OBJ: + its .mtl and, when textured, `<name>_texture.png`). `texture_format`: "png" or
    "jpeg", the encoding of the GLB's base-colour texture (its normal map stays PNG: JPEG's blocks would show
    as bumps). `lods`: levels of detail after `mesh`: a GLB holds the chain as nodes `<name>_LOD0`,
    `<name>_LOD1`, ...; an OBJ or PLY gets files of their own beside it (`<name>_LOD1.obj`, ...)."""
    path = check_output(path, FORMATS, "mesh")
    if texture_format not in TEXTURE_FORMATS:
        raise GTRError(f"unknown texture format {texture_format!r}; use one of {', '.join(TEXTURE_FORMATS)}")
    if path.suffix.lower() == ".glb":
        return [atomic_write(path, _glb(mesh, texture_format, lods, lod_name(path)))]
    if lods:
        written = write_mesh(mesh, path, texture_format)
        for level, lod in enumerate(lods, start=1):
            written += write_mesh(lod, path.with_name(f"{path.stem}_LOD{level}{path.suffix}"), texture_format)
        return written
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
