"""Shared test setup: deterministic seeds, the CUDA marker, the copied checkpoint layout, the backend server."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
CHECKPOINT_LAYOUT = DATA / "gtr-official-checkpoint-layout.json"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The backend server as a real process (one per test module), its jobs root the session's temporary
    folder, so every test's tmp_path lies inside; shut down cleanly at the end."""
    from backend_process import Server

    process = Server(tmp_path_factory.getbasetemp())
    yield process
    process.send({"id": 999, "op": "shutdown"})
    assert process.process.wait(timeout=30) == 0


@pytest.fixture(scope="session")
def fitted_sphere():
    """(field, triplane, views): a triplane fitted to a striped sphere (colour only roughly), and 4 views of the
    true striped sphere (rendered from an icosphere) at 128x128."""
    import trimesh

    from gtr_backend.mesh import Mesh
    from gtr_lab.synthetic.fitting import SPHERE_RADIUS, fit_triplane, sphere_inside, stripes
    from gtr_lab.synthetic.objects import ProceduralObject, orbit_render

    ico = trimesh.creation.icosphere(subdivisions=5, radius=SPHERE_RADIUS)
    sphere = Mesh(torch.tensor(ico.vertices, dtype=torch.float32), torch.tensor(ico.faces))
    views = orbit_render(ProceduralObject(sphere, stripes, "sphere"), size=128)
    field, triplane = fit_triplane(sphere_inside, stripes, steps=150, color_steps=30)
    return field, triplane, views
