"""Error-driven, crease-preserving simplification: flat sides collapse to their corners, curves keep the faces
their error needs, creases come out sharp, the surface stays closed, and levels of detail quarter the faces."""

import math

import torch
import trimesh
from captures import box, box_errors, box_turn, capture, open_edges, sphere

from gtr_backend.mesh import Mesh
from gtr_backend.mesh.decimate import (
    DecimateOptions,
    decimate,
    filtered_planes,
    object_radius,
    simplify_by_error,
)
from gtr_backend.mesh.fusion import fuse_depth

EXTENTS = (0.9, 0.7, 0.8)


def subdivided_box() -> Mesh:
    shape = box(EXTENTS)
    vertices, faces = trimesh.remesh.subdivide_to_size(shape.vertices.numpy(), shape.faces.numpy(), 0.03)
    return Mesh(torch.tensor(vertices, dtype=torch.float32), torch.tensor(faces))


def test_a_finely_split_box_collapses_to_its_twelve_triangles_with_exact_corners():
    dense = subdivided_box()
    simple = decimate(dense, DecimateOptions(max_error=1e-4))
    corners = box(EXTENTS).vertices
    assert dense.num_faces > 5000 and simple.num_faces == 12 and open_edges(simple.faces) == 0
    nearest = torch.cdist(simple.vertices, corners).min(dim=1).values
    assert float(nearest.max()) < 1e-4  # every vertex left is a corner, where the three planes meet


def test_the_error_bound_holds_and_sets_the_face_count():
    """A sphere: a larger error allows fewer faces; the surface stays within a few times the bound."""
    dense = sphere(0.75, 6)
    counts = []
    for error in (0.001, 0.004):
        simple = decimate(dense, DecimateOptions(max_error=error))
        samples = torch.tensor(
            trimesh.sample.sample_surface(
                trimesh.Trimesh(simple.vertices.numpy(), simple.faces.numpy(), process=False), 20000, seed=0
            )[0]
        )
        deviation = (samples.norm(dim=-1) - 0.75).abs()
        assert float(deviation.max()) < 4 * error and open_edges(simple.faces) == 0
        counts.append(simple.num_faces)
    assert counts[1] < 0.5 * counts[0]


def test_a_face_cap_is_kept():
    simple = decimate(sphere(0.75, 5), DecimateOptions(max_faces=500))
    assert 450 <= simple.num_faces <= 500 and open_edges(simple.faces) == 0


def test_auto_faces_makes_a_fused_box_a_few_flat_faces_with_sharp_edges():
    """The box's depth fused (marching cubes rounds its edges off) and simplified by error: a few dozen faces,
    the sides flat and the edges sharp again (the issue's bar: 200 faces, 0.5 degrees, 0.25 % of the edge)."""
    fused = fuse_depth(capture(box(EXTENTS), size=512, count=16))
    simple = simplify_by_error(fused)
    distance, angle = box_errors(simple, EXTENTS, box_turn())
    print(
        f"{fused.num_faces} -> {simple.num_faces} faces; normals {float(angle.mean()):.3f} deg; "
        f"p99 {float(distance.quantile(0.99)) / min(EXTENTS) * 100:.3f} % of the edge"
    )
    assert simple.num_faces <= 200 and open_edges(simple.faces) == 0
    assert float(angle.mean()) < 0.5
    assert float(distance.quantile(0.99)) < 0.0025 * min(EXTENTS)


def test_auto_faces_keeps_a_curved_surface_close():
    fused = fuse_depth(capture(sphere(0.75, 6), size=384, count=16))
    simple = simplify_by_error(fused)
    samples = torch.tensor(
        trimesh.sample.sample_surface(
            trimesh.Trimesh(simple.vertices.numpy(), simple.faces.numpy(), process=False), 20000, seed=0
        )[0]
    )
    deviation = (samples.norm(dim=-1) - 0.75).abs()
    assert 200 < simple.num_faces < 10000
    assert float(deviation.mean()) < 0.0015 * object_radius(simple)


def test_filtered_planes_give_a_rounded_crease_the_planes_of_its_sides():
    """The faces marching cubes leaves along a fused box's edges lean between its sides; after filtering, far
    more faces stand on one of the box's six planes (within 2 degrees)."""
    fused = fuse_depth(capture(box(EXTENTS), size=256, count=16))
    sides = torch.cat([torch.eye(3), -torch.eye(3)]) @ box_turn().T  # the turned box's face normals

    def on_a_side(planes: torch.Tensor) -> float:
        cosine = (planes[:, :3] @ sides.T).max(dim=1).values
        return float((cosine > math.cos(math.radians(2.0))).float().mean())

    raw, filtered = filtered_planes(fused, iterations=0), filtered_planes(fused)
    assert on_a_side(filtered) > 0.75 and on_a_side(filtered) > on_a_side(raw) + 0.2  # measured 0.82 against 0.54
