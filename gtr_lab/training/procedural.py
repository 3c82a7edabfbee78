"""Procedural training objects: seeded compositions of primitives with solid textures (no downloads).

`random_object(seed)` builds 1-4 primitives (ellipsoids, boxes, cylinders, cones, tori, capsules), some of them
thin along one axis (plates, discs) or two (rods, posts), some deformed (twisted, bent or bumped), with random
sizes, rotations and offsets, scaled to fit inside a sphere of radius 0.8, and gives each a solid texture:
flat colour, gradient, stripes, checks, a sum of sines, dots, thin grid lines, or printed text (random words in
Pillow's scalable font at several sizes or its bitmap font, projected onto the part like a label).
The same seed always gives the same object.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from torch import Tensor

from gtr_backend.mesh.mesh import Mesh

from ..synthetic.objects import ProceduralObject, merge_parts
from ..synthetic.patterns import dots, grid_lines, text_image

PRIMITIVES = ("ellipsoid", "box", "cylinder", "cone", "torus", "capsule")
PROPORTIONS = ("solid", "solid", "solid", "plate", "rod")
PATTERNS = ("flat", "gradient", "stripes", "checks", "waves", "dots", "grid", "text", "text")
DEFORMATIONS = ("none", "none", "twist", "bend", "bumps")
WORDS = (
    "GTR",
    "mesh",
    "ORBIT",
    "tex",
    "label",
    "2026",
    "A-12",
    "fragile",
    "this side up",
    "No. 7",
    "Lorem ipsum",
    "triplane",
    "OK",
    "zebra",
    "made in 3D",
    "42",
    "x7f",
    "SALE",
    "vol. 3",
)


def _primitive(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    size = rng.uniform(0.25, 0.6, size=3)
    proportion = str(rng.choice(PROPORTIONS))
    if proportion != "solid":  # a plate / disc (one thin axis) or a rod / post (two), as signs, books, handles
        thin = rng.choice(3, size=1 if proportion == "plate" else 2, replace=False)
        size[thin] = rng.uniform(0.025, 0.08, size=len(thin))
    if kind == "ellipsoid":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
        mesh.apply_scale(size)
    elif kind == "box":
        mesh = trimesh.creation.box(extents=2 * size)
    elif kind == "cylinder":
        mesh = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=32)
    elif kind == "cone":
        mesh = trimesh.creation.cone(radius=size[0], height=2 * size[1], sections=32)
    elif kind == "torus":
        mesh = trimesh.creation.torus(
            major_radius=size[0], minor_radius=size[0] * rng.uniform(0.2, 0.45), major_sections=32, minor_sections=12
        )
    else:
        mesh = trimesh.creation.capsule(height=2 * size[1], radius=size[0] * 0.6, count=[16, 16])
    mesh = _deform(mesh, str(rng.choice(DEFORMATIONS)), rng)
    mesh.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
    mesh.apply_translation(rng.uniform(-0.35, 0.35, size=3))
    return mesh


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """trimesh's vertex normals. Without scipy, trimesh logs a warning with a traceback on every call and
    falls back to the same numbers computed densely; the warning is held back here, the numbers are kept."""
    log = logging.getLogger("trimesh")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return np.asarray(trimesh.Trimesh(vertices, faces).vertex_normals)
    finally:
        log.setLevel(level)


def _deform(mesh: trimesh.Trimesh, kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """Twist about Y, bend along X, or add smooth bumps along the normals (after refining the triangles)."""
    if kind == "none":
        return mesh
    vertices, faces = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=0.08)
    v = np.asarray(vertices, dtype=np.float64).copy()
    if kind == "twist":
        angle = rng.uniform(-1.5, 1.5) * v[:, 1]
        c, s = np.cos(angle), np.sin(angle)
        v[:, 0], v[:, 2] = c * v[:, 0] - s * v[:, 2], s * v[:, 0] + c * v[:, 2]
    elif kind == "bend":
        v[:, 1] += rng.uniform(-0.6, 0.6) * v[:, 0] ** 2
    else:
        normals = _vertex_normals(v, faces)
        frequency, phase = rng.uniform(4, 10, size=3), rng.uniform(0, 2 * math.pi, size=3)
        bumps = np.sin(v * frequency + phase).prod(axis=1) * rng.uniform(0.03, 0.08)
        v += normals * bumps[:, None]
    return trimesh.Trimesh(v, faces)


@dataclass(frozen=True)
class Texture:
    pattern: str
    a: Tensor  # two colours (3,)
    b: Tensor
    direction: Tensor  # unit (3,): stripe direction, or the label's projection axis
    frequency: float
    label: Tensor | None = None  # printed text (H, W, 3) for the "text" pattern


def _label(rng: np.random.Generator, ink: Tensor, paper: Tensor) -> Tensor:
    lines = [(str(rng.choice(WORDS)), int(rng.choice((18, 28, 40, 64)))) for _ in range(int(rng.integers(1, 4)))]
    return text_image(lines, 256, 160, tuple(ink.tolist()), tuple(paper.tolist()), bitmap_font=bool(rng.random() < 0.2))


def _texture(pattern: str, rng: np.random.Generator) -> Texture:
    a, b = torch.tensor(rng.random(3), dtype=torch.float32), torch.tensor(rng.random(3), dtype=torch.float32)
    direction = torch.tensor(rng.normal(size=3), dtype=torch.float32)
    direction = direction / direction.norm()
    frequency = float(rng.uniform(4.0, 24.0))
    if pattern == "text":
        ink = a * 0.3 if float(b.mean()) > 0.5 else 1 - (1 - a) * 0.3  # keep the text readable on its paper
        return Texture(pattern, ink, b, direction, frequency, _label(rng, ink, b))
    return Texture(pattern, a, b, direction, frequency)


def _shade(texture: Texture, points: Tensor) -> Tensor:
    pattern, frequency = texture.pattern, texture.frequency
    a, b, direction = (t.to(points.device) for t in (texture.a, texture.b, texture.direction))
    s = points @ direction
    if pattern == "flat":
        t = torch.zeros_like(s)
    elif pattern == "gradient":
        t = (s + 1) / 2
    elif pattern == "stripes":
        t = (torch.sin(s * frequency) > 0).float()
    elif pattern == "checks":
        cells = torch.floor(points * frequency / math.pi)
        t = (cells.sum(-1) % 2).abs()
    elif pattern == "waves":
        t = 0.5 + 0.25 * (torch.sin(points[:, 0] * frequency) + torch.sin(points[:, 2] * frequency * 0.7 + s))
    elif pattern == "dots":
        t = dots(points, 2.5 / frequency, 0.6 / frequency)
    elif pattern == "grid":
        t = grid_lines(points, 3.0 / frequency, 0.4 / frequency)
    else:  # text: a label projected along the (rotated) direction, on paper colour b elsewhere
        assert texture.label is not None
        label, _ = _project_label(texture.label, points, direction)
        return label.clamp(0, 1)
    return (a + (b - a) * t.clamp(0, 1)[:, None]).clamp(0, 1)


def _project_label(label: Tensor, points: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
    """The label seen along `direction`: a 1.0 x 0.625 rectangle centred on the part, repeated beyond it."""
    up = torch.tensor([0.0, 1.0, 0.0], device=points.device)
    right = torch.linalg.cross(up, direction)
    right = right / right.norm().clamp_min(1e-6)
    up = torch.linalg.cross(direction, right)
    u = torch.remainder(points @ right / 1.0 + 0.5, 1.0)
    v = torch.remainder(0.5 - points @ up / 0.625, 1.0)
    grid = torch.stack([u * 2 - 1, v * 2 - 1], -1).reshape(1, -1, 1, 2)
    image = label.to(points.device).permute(2, 0, 1)[None]
    out = torch.nn.functional.grid_sample(image, grid, mode="bilinear", align_corners=False)
    return out[0, :, :, 0].T, torch.ones_like(u, dtype=torch.bool)


def random_object(seed: int) -> ProceduralObject:
    """A reproducible random textured object inside the sphere of radius 0.8 around the origin."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 5))
    parts = [_primitive(str(rng.choice(PRIMITIVES)), rng) for _ in range(count)]
    textures = [_texture(str(rng.choice(PATTERNS)), rng) for _ in range(count)]
    merged = merge_parts(parts)
    low, high = merged.vertices.min(0).values, merged.vertices.max(0).values
    centre = (low + high) / 2
    scale = 0.8 / float((merged.vertices - centre).norm(dim=-1).max())  # inside a sphere of radius 0.8
    mesh = Mesh((merged.vertices - centre) * scale, merged.faces)
    centres = torch.stack([(torch.tensor(p.vertices.mean(0), dtype=torch.float32) - centre) * scale for p in parts])

    def color(points: Tensor) -> Tensor:
        # Each point takes the texture of the primitive whose centre is nearest.
        owner = torch.cdist(points, centres.to(points.device)).argmin(dim=1)
        rgb = torch.zeros_like(points)
        for i, texture in enumerate(textures):
            chosen = owner == i
            if chosen.any():
                rgb[chosen] = _shade(texture, points[chosen])
        return rgb

    return ProceduralObject(mesh, color, f"procedural_{seed}")
