import math

import numpy as np
import pytest
import torch

from gtr_backend.mesh import Mesh, MeshError, extract_mesh, grid_points, marching_cubes, sdf_to_mesh, simplify
from gtr_backend.mesh.extract import diso_available


def sphere_sdf(resolution: int, radius: float = 0.6, dtype=torch.float32) -> torch.Tensor:
    return grid_points(resolution).to(dtype).norm(dim=-1) - radius


def edge_use(faces: torch.Tensor) -> dict[tuple[int, int], int]:
    """How often each directed edge appears."""
    counts: dict[tuple[int, int], int] = {}
    for a, b, c in faces.tolist():
        for edge in ((a, b), (b, c), (c, a)):
            counts[edge] = counts.get(edge, 0) + 1
    return counts


def assert_watertight_and_oriented(faces: torch.Tensor) -> None:
    """Every directed edge appears exactly once and its reverse exactly once: closed, consistently wound."""
    counts = edge_use(faces)
    assert all(n == 1 for n in counts.values())
    assert all(counts.get((b, a)) == 1 for a, b in counts)


def test_sphere_is_watertight_with_the_right_area_volume_and_outward_normals():
    mesh = sdf_to_mesh(sphere_sdf(64))
    assert_watertight_and_oriented(mesh.faces)
    assert mesh.area() == pytest.approx(4 * math.pi * 0.36, rel=0.02)
    assert mesh.volume() == pytest.approx(4 / 3 * math.pi * 0.216, rel=0.02)
    centroids = mesh.vertices[mesh.faces].mean(dim=1)
    assert ((mesh.face_normals() * centroids).sum(-1) > 0).all()  # outward everywhere
    assert (mesh.vertices.norm(dim=-1) - 0.6).abs().max() < 2 / 63 * 0.1


def test_random_fields_give_closed_meshes_even_in_ambiguous_cells():
    torch.manual_seed(3)
    vertices, faces = marching_cubes(torch.randn(12, 12, 12))
    assert faces.shape[0] > 500
    assert_watertight_and_oriented(faces)
    assert Mesh(vertices, faces).volume() > 0


def test_surfaces_touching_the_border_are_closed():
    sdf = grid_points(16)[..., 1] - 0.3  # inside below y = 0.3: touches five faces of the box
    mesh = sdf_to_mesh(sdf)
    assert_watertight_and_oriented(mesh.faces)


def test_vertex_gradients_reach_the_grid_and_match_finite_differences():
    sdf = sphere_sdf(10, radius=0.55, dtype=torch.float64).requires_grad_(True)
    weights = torch.randn(3, dtype=torch.float64)

    def loss_of(grid: torch.Tensor) -> torch.Tensor:
        vertices, _ = marching_cubes(grid)
        return (vertices @ weights).sin().sum()

    loss_of(sdf).backward()
    grad = sdf.grad
    assert grad is not None and grad.abs().sum() > 0
    eps = 1e-6
    near_surface = torch.nonzero(sdf.detach().abs() < 0.15)
    for index in near_surface[torch.randperm(len(near_surface))[:8]].tolist():
        bumped = sdf.detach().clone()
        bumped[tuple(index)] += eps
        lowered = sdf.detach().clone()
        lowered[tuple(index)] -= eps
        numeric = (loss_of(bumped) - loss_of(lowered)) / (2 * eps)
        assert float(grad[tuple(index)]) == pytest.approx(float(numeric), rel=1e-4, abs=1e-7)


def test_density_level_and_world_frame():
    """Density 20 inside a sphere of radius 0.5 centred at (0.2, 0, 0): the mesh sits there, level 10."""
    centre = torch.tensor([0.2, 0.0, 0.0])

    def density(points):
        return 20.0 * torch.sigmoid((0.5 - (points - centre).norm(dim=-1, keepdim=True)) * 50)

    mesh = extract_mesh(density, 48, chunk_points=5000)
    radii = (mesh.vertices - centre).norm(dim=-1)
    assert radii.mean() == pytest.approx(0.5, abs=0.01)


def test_empty_and_full_fields_are_clear_errors():
    with pytest.raises(MeshError, match="never reaches the surface level"):
        sdf_to_mesh(torch.ones(8, 8, 8))
    with pytest.raises(MeshError, match="fills the whole box"):
        sdf_to_mesh(-torch.ones(8, 8, 8))


@pytest.mark.parametrize("backend", ["meshoptimizer", "fast-simplification"])
def test_simplify_reaches_the_target_and_keeps_the_shape(backend):
    """Both simplifiers: about the target count, the same volume, and close to the full surface (Chamfer and
    Hausdorff distance against it, measured: see notes-5)."""
    from gtr_lab.evaluation.metrics import nearest_distances, sample_surface

    mesh = sdf_to_mesh(sphere_sdf(64))
    small = simplify(mesh, 2000, backend)
    assert 1800 <= small.num_faces <= 2200
    assert small.volume() == pytest.approx(mesh.volume(), rel=0.03)
    full, reduced = sample_surface(mesh, 20000), sample_surface(small, 20000)
    there, back = nearest_distances(reduced, full), nearest_distances(full, reduced)
    assert float(there.mean() + back.mean()) / 2 < 0.01 and max(float(there.max()), float(back.max())) < 0.03
    assert simplify(small, 10**6, backend) is small


def test_simplify_uses_meshoptimizer_when_installed():
    from gtr_backend.mesh.simplify import simplifier

    assert simplifier() == "meshoptimizer"  # the dev environment installs it (pyproject's dev and fast extras)


@pytest.mark.cuda
def test_diso_and_torch_marching_cubes_agree():
    """Same vertices (both interpolate along the same grid edges) and, on a smooth field where no cell is
    ambiguous, the same surface; each is closed and faces outwards."""
    if not diso_available():
        pytest.skip("the optional diso package is not installed")
    points = grid_points(64).cuda()
    sdf = points.norm(dim=-1) - 0.6 + 0.05 * torch.sin(4 * points[..., 0]) * torch.cos(3 * points[..., 1])
    ours = sdf_to_mesh(sdf, backend="torch")
    theirs = sdf_to_mesh(sdf, backend="diso")
    assert ours.num_vertices == theirs.num_vertices

    def rows(vertices: torch.Tensor) -> np.ndarray:
        v = vertices.cpu().double().numpy().round(4)
        return v[np.lexsort(v.T[::-1])]

    assert np.allclose(rows(ours.vertices), rows(theirs.vertices), atol=2e-3)
    assert ours.num_faces == theirs.num_faces
    assert ours.area() == pytest.approx(theirs.area(), rel=1e-3)
    assert ours.volume() == pytest.approx(theirs.volume(), rel=1e-3) and ours.volume() > 0
    assert_watertight_and_oriented(theirs.faces.cpu())
