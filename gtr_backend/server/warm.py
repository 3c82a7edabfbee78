"""The start-up warm-up's kernels: every kind a reconstruction runs, once, on tiny inputs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds the block takes to `timings[name]`."""
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start


def warm_kernels(model: Any, device: Any, say: Callable[[str], None] | None = None) -> dict[str, str]:
    """Run once, on tiny inputs, every kind of kernel a reconstruction runs on `device`: the network (4 views of
    a sphere at the model's size), the field, marching cubes, the rasterizer (nvdiffrast's plugin is loaded, or
    built, here; `say` hears how the build goes) with its gradients, and an optimizer step. Returns the
    rasterizer's and the marching cubes' names."""
    import torch

    from ..devices import synchronize
    from ..mesh.extract import diso_available, grid_points, sdf_to_mesh
    from ..model.fields import sample_triplane
    from ..reconstruction import predict_triplane
    from ..render.raster import get_rasterizer, project
    from ..views.sphere import sphere_views

    size = model.config.image_size
    views = sphere_views(size=size).to(device)
    triplane = predict_triplane(model, views)
    with torch.no_grad():
        model.field.density(sample_triplane(triplane[None], torch.rand(1, 256, 3, device=device) * 2 - 1)[0])
    points = grid_points(24, device)
    mesh = sdf_to_mesh(points.norm(dim=-1) - 0.6)
    rasterizer = get_rasterizer(device, say=say)
    vertices = mesh.vertices.float().clone().requires_grad_(True)
    clip = project(vertices, views.intrinsics[:1].float(), views.c2w[:1].float(), 32, 32)
    fragments = rasterizer.rasterize(clip, mesh.faces, 32, 32)
    covered = rasterizer.interpolate(torch.ones_like(vertices[:, :1]), fragments, mesh.faces)
    optimizer = torch.optim.Adam([vertices], lr=1e-3)
    rasterizer.antialias(covered, fragments, clip, mesh.faces).mean().backward()
    optimizer.step()
    synchronize(device)
    use_diso = device.type == "cuda" and diso_available()
    return {"rasterizer": rasterizer.name, "marching_cubes": "diso" if use_diso else "torch"}
