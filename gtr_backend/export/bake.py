"""UV unwrapping (projected charts or xatlas) and baking a colour field into a texture atlas.

`unwrap`: mesh -> the same surface with per-vertex UVs in [0, 1] (v up); vertices on chart seams are split.
`bake_texture`: the UV layout is rasterized as an image (texel row 0 = v = 1), each covered texel gets the
colour of its surface point, and the empty texels are then filled from the charts' own colours in one
pull-push pass, so bilinear filtering and mip-mapping never pull in the empty background: no seams show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..contract import RECONSTRUCT_OPTIONS
from ..mesh.mesh import Mesh
from ..pixels import pull_push
from ..refine.projection import ViewColors
from ..render.raster import Rasterizer, TorchRasterizer, uv_clip

ColorFn = Callable[[Tensor], Tensor]  # world points (P, 3) -> rgb (P, 3)


def smooth_normals(mesh: Mesh) -> Tensor:
    """(V, 3) unit vertex normals that ignore UV seams: vertices at the same position share one normal."""
    welded, index = torch.unique(mesh.vertices.detach(), dim=0, return_inverse=True)
    return Mesh(welded, index[mesh.faces]).vertex_normals()[index]


def surface_colors(
    colors: ColorFn,
    points: Tensor,
    normals: Tensor,
    views: ViewColors | None,
    chunk_points: int = 1 << 18,
    check: Callable[[], None] | None = None,
) -> Tensor:
    """rgb (P, 3) in [0, 1] of surface points: the colour field, with the input views laid over it (if given).
    `check` is called before every chunk (it raises to stop)."""
    return surface_values(colors, points, normals, views, chunk_points, check)[0]


def surface_values(
    colors: ColorFn,
    points: Tensor,
    normals: Tensor,
    views: ViewColors | None,
    chunk_points: int = 1 << 18,
    check: Callable[[], None] | None = None,
    faces: Tensor | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(rgb (P, 3), material (P, 3: roughness, metallic, known) or None, emission (P, 3) or None) of surface
    points: `surface_colors`, and the views' material and emission where they carry them. `faces` (P,): the
    face of the views' mesh each point lies on (each then takes its face's view, `ViewColors.project`)."""
    rgbs: list[Tensor] = []
    materials: list[Tensor] = []
    emissions: list[Tensor] = []
    with torch.no_grad():
        for i in range(0, points.shape[0], chunk_points):
            if check is not None:
                check()
            p = points[i : i + chunk_points]
            if views is None:
                rgbs.append(colors(p).float().clamp(0, 1))
                continue
            seen = views.project(
                p, normals[i : i + chunk_points], None if faces is None else faces[i : i + chunk_points]
            )
            rgbs.append(views.blend(p, normals[i : i + chunk_points], colors, seen).clamp(0, 1))
            if seen.material is not None:
                materials.append(seen.material)
            if seen.emission is not None:
                emissions.append(seen.emission.clamp(0, 1))
    rgb = torch.cat(rgbs) if rgbs else points.new_zeros((0, 3))
    return rgb, torch.cat(materials) if materials else None, torch.cat(emissions) if emissions else None


UV_METHODS = RECONSTRUCT_OPTIONS["uv"].choices


def unwrap(mesh: Mesh, texture_size: int = 1024, method: str = "fast") -> Mesh:
    """UV-unwrap: returns a mesh with `uv` (V', 2) in [0, 1], vertices split along seams. `method`: "fast"
    (projected charts, `atlas.fast_unwrap`: no overlapping texels, a fraction of xatlas's time) or "xatlas"
    (its own charts and packing: the tightest atlas, seconds at 20k faces)."""
    if method == "fast":
        from .atlas import fast_unwrap

        return fast_unwrap(mesh, texture_size)
    if method != "xatlas":
        raise ValueError(f"unknown UV method {method!r}; use one of {', '.join(UV_METHODS)}")
    return xatlas_unwrap(mesh, texture_size)


def xatlas_unwrap(mesh: Mesh, texture_size: int = 1024, padding: int = 2) -> Mesh:
    """UV-unwrap with xatlas: returns a mesh with `uv` (V', 2), vertices split along seams."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(mesh.vertices.detach().cpu().numpy().astype(np.float32), mesh.faces.cpu().numpy().astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = texture_size
    pack.padding = padding
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    mapping, indices, uvs = atlas[0]
    device = mesh.vertices.device
    index = torch.from_numpy(mapping.astype(np.int64)).to(device)
    return Mesh(
        mesh.vertices[index],
        torch.from_numpy(indices.astype(np.int64)).to(device),
        uv=torch.from_numpy(uvs.astype(np.float32)).to(device),
    )


def bake_texture(
    mesh: Mesh,
    colors: ColorFn,
    texture_size: int = 1024,
    rasterizer: Rasterizer | None = None,
    views: ViewColors | None = None,
    check: Callable[[], None] | None = None,
) -> Tensor:
    """Texture (S, S, 3) in [0, 1] of `colors` over a mesh with `uv` (with the input views' own colours where
    they see the surface, if `views` is given); texels no face covers take their chart's colours
    (`pull_push`), so bilinear filtering and mip-mapping never pull in a background."""
    return bake_textures(mesh, colors, texture_size, rasterizer, views, check).texture


@dataclass(frozen=True)
class Baked:
    """The textures of one bake, (S, S, 3) in [0, 1] on the mesh's uv: base colour; the material as glTF packs
    it (1, roughness, metallic) and the emission, where the views carry them (else None)."""

    texture: Tensor
    material: Tensor | None = None
    emission: Tensor | None = None


def bake_textures(
    mesh: Mesh,
    colors: ColorFn,
    texture_size: int = 1024,
    rasterizer: Rasterizer | None = None,
    views: ViewColors | None = None,
    check: Callable[[], None] | None = None,
) -> Baked:
    """`bake_texture`, and with views that carry material and emission passes their textures too: each texel
    takes what the views that see it well show; texels they do not show (or whose source said nothing) take
    their neighbours' (`pull_push`). A material no view knows anywhere is left out (None)."""
    if mesh.uv is None:
        raise ValueError("bake_texture needs a mesh with uv (see unwrap)")
    rasterizer = rasterizer or TorchRasterizer()
    clip = uv_clip(mesh.uv.float())
    fragments = rasterizer.rasterize(clip, mesh.faces, texture_size, texture_size)
    attributes = mesh.vertices.detach().float()
    if views is not None:  # surface points and normals, in one pass
        attributes = torch.cat([attributes, smooth_normals(mesh).float()], dim=1)
    surface = rasterizer.interpolate(attributes, fragments, mesh.faces)[0]  # (S, S, 3 or 6)
    points, normals = surface[..., :3], surface[..., -3:]
    covered = fragments.mask[0]
    faces = fragments.triangle_id[0][covered]
    rgb, material, emission = surface_values(colors, points[covered], normals[covered], views, check=check, faces=faces)
    if not bool(covered.any()):
        return Baked(torch.full((texture_size, texture_size, 3), 0.5, device=points.device))

    def texture_of(values: Tensor, known: Tensor | None = None) -> Tensor:
        image = torch.zeros((texture_size, texture_size, values.shape[1]), dtype=values.dtype, device=values.device)
        image[covered] = values.clamp(0, 1)
        filled = covered.clone()
        if known is not None:
            filled[covered] = known
        return pull_push(image, filled).clamp(0, 1)

    material_texture = None
    if material is not None and bool((material[:, 2] > 0.5).any()):
        packed = torch.cat([torch.ones_like(material[:, :1]), material[:, :2]], dim=1)  # glTF: R unused, G, B
        material_texture = texture_of(packed, material[:, 2] > 0.5)
    emission_texture = texture_of(emission) if emission is not None else None
    return Baked(texture_of(rgb), material_texture, emission_texture)


def bake_vertex_colors(mesh: Mesh, colors: ColorFn, views: ViewColors | None = None) -> Mesh:
    """The mesh with `vertex_colors` (V, 3) sampled from `colors` (and the input views, if given)."""
    rgb = surface_colors(colors, mesh.vertices.detach().float(), mesh.vertex_normals(), views)
    return Mesh(mesh.vertices, mesh.faces, vertex_colors=rgb)
