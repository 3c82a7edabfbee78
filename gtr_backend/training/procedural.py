"""Procedural training objects: seeded compositions of primitives with solid textures (no downloads).

`random_object(seed)` builds 1-4 primitives (ellipsoids, boxes, cylinders, cones, tori, capsules) with random
sizes, rotations and offsets, scaled to fit inside a sphere of radius 0.8, and gives each a solid texture: flat colour,
gradient, stripes, checks or a sum of sines. The same seed always gives the same object.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import trimesh
from torch import Tensor

from ..mesh.mesh import Mesh
from ..synthetic.objects import ProceduralObject, merge_parts

PRIMITIVES = ("ellipsoid", "box", "cylinder", "cone", "torus", "capsule")
PATTERNS = ("flat", "gradient", "stripes", "checks", "waves")


def _primitive(kind: str, rng: np.random.Generator) -> trimesh.Trimesh:
    size = rng.uniform(0.25, 0.6, size=3)
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
    mesh.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
    mesh.apply_translation(rng.uniform(-0.35, 0.35, size=3))
    return mesh


def _texture(pattern: str, rng: np.random.Generator) -> tuple[str, Tensor, Tensor, Tensor, float]:
    a, b = torch.tensor(rng.random(3), dtype=torch.float32), torch.tensor(rng.random(3), dtype=torch.float32)
    direction = torch.tensor(rng.normal(size=3), dtype=torch.float32)
    direction = direction / direction.norm()
    frequency = float(rng.uniform(4.0, 24.0))
    return pattern, a, b, direction, frequency


def _shade(texture: tuple[str, Tensor, Tensor, Tensor, float], points: Tensor) -> Tensor:
    pattern, a, b, direction, frequency = texture
    a, b, direction = a.to(points.device), b.to(points.device), direction.to(points.device)
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
    else:
        t = 0.5 + 0.25 * (torch.sin(points[:, 0] * frequency) + torch.sin(points[:, 2] * frequency * 0.7 + s))
    return (a + (b - a) * t.clamp(0, 1)[:, None]).clamp(0, 1)


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
