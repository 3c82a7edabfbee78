"""The project's small evaluation set: twelve textured objects anyone may redistribute (generated here, CC0).

They stress what the paper highlights as hard: printed text at several sizes, fine stripes, checks, dots
and thin lines, on simple and composite shapes. `evaluation_objects()` returns them as `ProceduralObject`s
(solid textures, exact); `write_evaluation_set(folder)` bakes each into a UV-textured GLB (xatlas atlas,
texture baked from the solid texture), the files `gtr eval` reads. `scripts/make_evalset.py` rewrites
`examples/evalset/` with it. None of these objects is used for training (training uses
`training.procedural.random_object`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import trimesh
from torch import Tensor

from gtr_backend.export.bake import bake_texture, unwrap
from gtr_backend.mesh.mesh import Mesh

from .objects import ProceduralObject, merge_parts
from .patterns import checks, cylindrical, dots, grid_lines, mix, planar, stripes, text_image

_Y = (0, 1, 0)


def _rotate(mesh: trimesh.Trimesh, degrees: float, axis: tuple[int, int, int]) -> trimesh.Trimesh:
    mesh.apply_transform(trimesh.transformations.rotation_matrix(np.radians(degrees), axis))
    return mesh


def _moved(mesh: trimesh.Trimesh, offset: tuple[float, float, float]) -> trimesh.Trimesh:
    mesh.apply_translation(offset)
    return mesh


def _upright(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """trimesh builds cylinders, cones and capsules along Z; stand them along Y (up)."""
    return _rotate(mesh, -90, (1, 0, 0))


def _fine(mesh: trimesh.Trimesh, edge: float = 0.06) -> trimesh.Trimesh:
    """Subdivide long edges so per-vertex effects (and the bake's atlas) stay well sampled."""
    vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=edge)
    return trimesh.Trimesh(vertices, faces)


def soup_can() -> ProceduralObject:
    can = _upright(trimesh.creation.cylinder(radius=0.45, height=1.2, sections=64))
    label = text_image([("TOMATO", 96), ("SOUP", 72), ("net wt 305 g - keep cool", 28)], 1024, 384)

    def color(p: Tensor) -> Tensor:
        rgb, inside = cylindrical(label, p, (-0.4, 0.4), turns=1.0)
        rim = mix((0.75, 0.75, 0.78), (0.55, 0.55, 0.6), stripes(p, _Y, 60.0))
        band = mix((0.8, 0.1, 0.1), (0.95, 0.95, 0.95), (p[:, 1] < 0).float())
        return torch.where(inside[:, None], rgb, torch.where((p[:, 1].abs() > 0.55)[:, None], rim, band))

    return ProceduralObject(merge_parts([_fine(can)]), color, "soup-can")


def book() -> ProceduralObject:
    block = trimesh.creation.box(extents=(1.0, 1.4, 0.3))
    cover = text_image(
        [("A FIELD GUIDE", 64), ("to", 40), ("TRIPLANES", 88), ("Volume II", 36)],
        640,
        896,
        ink=(0.95, 0.85, 0.3),
        paper=(0.1, 0.2, 0.45),
    )
    spine = text_image([("GUIDE", 40)], 96, 640, ink=(0.95, 0.85, 0.3), paper=(0.1, 0.2, 0.45))

    def color(p: Tensor) -> Tensor:
        pages = mix((0.97, 0.96, 0.9), (0.8, 0.78, 0.72), stripes(p, (0, 0, 1), 180.0))
        front, on_front = planar(cover, p, 2, (0.0, 0.0), (1.0, 1.4))
        side, on_side = planar(spine, p, 0, (0.0, 0.0), (0.3, 1.4))
        rgb = torch.where((p[:, 2] > 0.149)[:, None] & on_front[:, None], front, pages)
        rgb = torch.where((p[:, 0] > 0.499)[:, None] & on_side[:, None], side, rgb)
        back = (p[:, 2] < -0.149)[:, None]
        return torch.where(back, torch.tensor((0.1, 0.2, 0.45), device=p.device).expand_as(p), rgb)

    return ProceduralObject(merge_parts([_fine(block)]), color, "book")


def striped_sphere() -> ProceduralObject:
    ball = trimesh.creation.icosphere(subdivisions=5, radius=0.8)

    def color(p: Tensor) -> Tensor:
        return mix((0.1, 0.3, 0.8), (0.95, 0.9, 0.2), stripes(p, (0.3, 1.0, 0.2), 40.0))

    return ProceduralObject(merge_parts([ball]), color, "fine-stripes-ball")


def checker_cube() -> ProceduralObject:
    cube = _rotate(trimesh.creation.box(extents=(1.0, 1.0, 1.0)), 30, _Y)

    def color(p: Tensor) -> Tensor:
        return mix((0.05, 0.05, 0.05), (0.95, 0.3, 0.2), checks(p + 0.01, 10.0))

    return ProceduralObject(merge_parts([_fine(cube)]), color, "checker-cube")


def mug() -> ProceduralObject:
    body = _upright(trimesh.creation.cylinder(radius=0.4, height=0.9, sections=64))
    handle = _moved(_rotate(trimesh.creation.torus(0.25, 0.06, 48, 16), 90, (1, 0, 0)), (0.45, 0.0, 0.0))
    word = text_image([("COFFEE", 80), ("since 2026", 32)], 768, 256, ink=(0.95, 0.95, 0.95), paper=(0.2, 0.1, 0.05))

    def color(p: Tensor) -> Tensor:
        rgb, inside = cylindrical(word, p, (-0.2, 0.25), turns=2.0)
        body_rgb = mix((0.2, 0.1, 0.05), (0.9, 0.6, 0.3), stripes(p, _Y, 50.0))
        rgb = torch.where(inside[:, None], rgb, body_rgb)
        on_handle = (p[:, 0] > 0.41)[:, None]
        return torch.where(on_handle, torch.tensor((0.9, 0.6, 0.3), device=p.device).expand_as(p), rgb)

    return ProceduralObject(merge_parts([_fine(body), handle]), color, "mug")


def polka_capsule() -> ProceduralObject:
    capsule = _rotate(trimesh.creation.capsule(height=1.0, radius=0.4, count=[32, 32]), 90, _Y)

    def color(p: Tensor) -> Tensor:
        return mix((0.95, 0.95, 0.9), (0.85, 0.1, 0.4), dots(p, 0.2, 0.06))

    return ProceduralObject(merge_parts([capsule]), color, "polka-capsule")


def sign_post() -> ProceduralObject:
    board = _moved(trimesh.creation.box(extents=(1.4, 0.8, 0.08)), (0.0, 0.3, 0.0))
    post = _moved(_upright(trimesh.creation.cylinder(radius=0.05, height=1.0, sections=24)), (0.0, -0.45, 0.0))
    notice = text_image(
        [("NO PARKING", 72), ("except for", 40), ("3D reconstructions", 40), ("small print: 8-24 h daily", 20)],
        1120,
        640,
    )
    back = text_image([("EXIT", 40)], 160, 64, bitmap_font=True)

    def color(p: Tensor) -> Tensor:
        front, on_front = planar(notice, p, 2, (0.0, 0.3), (1.4, 0.8))
        behind, on_back = planar(back, p * torch.tensor((-1.0, 1.0, -1.0), device=p.device), 2, (0.0, 0.3), (1.4, 0.8))
        wood = mix((0.45, 0.3, 0.15), (0.35, 0.22, 0.1), stripes(p, _Y, 90.0))
        rgb = torch.where((on_front & (p[:, 2] > 0.039))[:, None], front, wood)
        return torch.where((on_back & (p[:, 2] < -0.039))[:, None], behind, rgb)

    return ProceduralObject(merge_parts([_fine(board), post]), color, "sign-post")


def grid_torus() -> ProceduralObject:
    ring = _rotate(trimesh.creation.torus(0.55, 0.22, 96, 32), 60, (1, 0, 0))

    def color(p: Tensor) -> Tensor:
        return mix((0.2, 0.7, 0.4), (0.05, 0.05, 0.05), grid_lines(p, 0.12, 0.015))

    return ProceduralObject(merge_parts([ring]), color, "grid-torus")


def stacked_blocks() -> ProceduralObject:
    letters = "GTR"
    parts = []
    for i in range(len(letters)):
        parts.append(
            _moved(_rotate(trimesh.creation.box(extents=(0.5, 0.5, 0.5)), 20 * i, _Y), (0.0, -0.55 + 0.52 * i, 0.0))
        )
    faces = [
        text_image([(letter, 300)], 320, 320, ink=(0.9, 0.9, 0.95), paper=colour)
        for letter, colour in zip(letters, [(0.8, 0.2, 0.2), (0.2, 0.6, 0.2), (0.2, 0.3, 0.8)], strict=True)
    ]

    def color(p: Tensor) -> Tensor:
        rgb = torch.zeros_like(p)
        level = ((p[:, 1] + 0.81) / 0.52).floor().clamp(0, 2).long()
        for i in range(3):
            angle = np.radians(-20 * i)
            turn = torch.tensor(
                [[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]],
                dtype=p.dtype,
                device=p.device,
            )
            local = (p - torch.tensor((0.0, -0.55 + 0.52 * i, 0.0), device=p.device)) @ turn.T
            letter, on = planar(faces[i], local, 2, (0, 0), (0.5, 0.5))
            side, on_side = planar(faces[i], local, 0, (0, 0), (0.5, 0.5))
            plain = torch.tensor(faces[i][0, 0].tolist(), device=p.device).expand_as(p)
            block = torch.where((on & (local[:, 2] > 0.24))[:, None], letter, plain)
            block = torch.where((on_side & (local[:, 0] > 0.24))[:, None], side, block)
            rgb = torch.where((level == i)[:, None], block, rgb)
        return rgb

    return ProceduralObject(merge_parts([_fine(b) for b in parts]), color, "letter-blocks")


def cone_rings() -> ProceduralObject:
    cone = _moved(_upright(trimesh.creation.cone(radius=0.6, height=1.4, sections=64)), (0.0, -0.7, 0.0))

    def color(p: Tensor) -> Tensor:
        hue = (p[:, 1] + 0.7) / 1.4
        base = torch.stack([hue, 0.4 + 0.3 * (1 - hue), 1 - hue], -1)
        return torch.where(stripes(p, _Y, 70.0)[:, None] > 0, base, torch.ones_like(base) * 0.95)

    return ProceduralObject(merge_parts([_fine(cone)]), color, "ringed-cone")


def toy_car() -> ProceduralObject:
    """A car-like toy turned 30 degrees: a printed body and cabin on four wheels, with open space under the body
    between the wheels (what phantom volume fills) and wheel colours that must stay on the wheels."""
    body = _moved(trimesh.creation.box(extents=(1.5, 0.36, 0.72)), (0.0, -0.08, 0.0))
    cabin = _moved(trimesh.creation.box(extents=(0.72, 0.3, 0.62)), (-0.1, 0.25, 0.0))
    wheels = [
        _moved(trimesh.creation.cylinder(radius=0.2, height=0.14, sections=48), (x, -0.32, z))  # axle along z
        for x in (-0.48, 0.48)
        for z in (-0.435, 0.435)  # beside the body, not into it: the parts' volumes never overlap
    ]
    number = text_image([("42", 150)], 256, 200, ink=(0.95, 0.95, 0.95), paper=(0.8, 0.12, 0.1))
    parts = [_fine(body), _fine(cabin), *wheels]
    turn = np.radians(30.0)

    def color(p: Tensor) -> Tensor:
        c, s = float(np.cos(turn)), float(np.sin(turn))
        local = torch.stack([c * p[:, 0] - s * p[:, 2], p[:, 1], s * p[:, 0] + c * p[:, 2]], -1)  # undo the turn
        x, y, z = local.unbind(-1)
        paint = mix((0.8, 0.12, 0.1), (0.95, 0.95, 0.95), ((y > -0.06) & (y < 0.0)).float())
        side, on_side = planar(number, torch.stack([x, y, z.abs()], -1), 2, (0.1, -0.08), (0.36, 0.28))
        rgb = torch.where((on_side & (z.abs() > 0.355) & (y > -0.26))[:, None], side, paint)
        glass = mix((0.15, 0.25, 0.4), (0.5, 0.7, 0.85), stripes(local, (1.0, 1.0, 0.0), 30.0))
        band = (y > 0.16) & (y < 0.35)
        window = band & (((z.abs() > 0.3) & (x > -0.4) & (x < 0.2)) | (x > 0.25) | (x < -0.45))
        rgb = torch.where(window[:, None], glass, rgb)
        on_wheel = (z.abs() > 0.362) & ((x.abs() - 0.48).abs() < 0.21)
        hub = ((x.abs() - 0.48) ** 2 + (y + 0.32) ** 2).sqrt() < 0.08
        tyre = mix((0.08, 0.08, 0.08), (0.75, 0.75, 0.7), hub.float())
        return torch.where(on_wheel[:, None], tyre, rgb)

    return ProceduralObject(merge_parts([_rotate(m, 30.0, _Y) for m in parts]), color, "toy-car")


def bowl() -> ProceduralObject:
    """An open bowl: a deep concavity that no silhouette can carve, glazed inside with dots and outside with
    rings."""
    outer = [(0.0, -0.35), (0.35, -0.35), (0.62, -0.1), (0.78, 0.25)]
    inner = [(0.72, 0.25), (0.57, -0.05), (0.3, -0.27), (0.0, -0.27)]
    profile = np.array(outer + inner)
    shell = trimesh.creation.revolve(profile, sections=96)
    shell = _upright(shell)

    def color(p: Tensor) -> Tensor:
        radius = (p[:, 0] ** 2 + p[:, 2] ** 2).sqrt()
        # Inside: the points nearer the inner profile than the outer one (the wall is 0.06-0.08 thick).
        inner_r = np.interp(p[:, 1].cpu().numpy(), [-0.27, -0.05, 0.25], [0.3, 0.57, 0.72])
        is_inner = (radius < torch.as_tensor(inner_r, device=p.device, dtype=p.dtype) + 0.03) & (p[:, 1] > -0.28)
        inside = mix((0.95, 0.92, 0.8), (0.2, 0.45, 0.75), dots(p, 0.16, 0.045))
        outside = mix((0.2, 0.45, 0.75), (0.95, 0.92, 0.8), stripes(p, _Y, 40.0))
        return torch.where(is_inner[:, None], inside, outside)

    return ProceduralObject(merge_parts([_fine(shell)]), color, "bowl")


EVALUATION_OBJECTS: tuple[Callable[[], ProceduralObject], ...] = (
    soup_can,
    book,
    striped_sphere,
    checker_cube,
    mug,
    polka_capsule,
    sign_post,
    grid_torus,
    stacked_blocks,
    cone_rings,
    toy_car,
    bowl,
)


def evaluation_objects() -> list[ProceduralObject]:
    return [make() for make in EVALUATION_OBJECTS]


def bake_object(obj: ProceduralObject, texture_size: int = 1024) -> Mesh:
    """A UV-textured mesh of `obj`: xatlas atlas, texture baked from its solid texture."""
    unwrapped = unwrap(obj.mesh, texture_size)
    texture = bake_texture(unwrapped, obj.color, texture_size)
    return Mesh(unwrapped.vertices, unwrapped.faces, unwrapped.uv, texture)


def write_evaluation_set(folder: Path, texture_size: int = 1024) -> list[Path]:
    """Write every evaluation object as `<name>.glb` into `folder`; returns the paths."""
    from gtr_backend.export.writers import write_mesh

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for obj in evaluation_objects():
        path = folder / f"{obj.name}.glb"
        write_mesh(bake_object(obj, texture_size), path)
        paths.append(path)
    return paths
