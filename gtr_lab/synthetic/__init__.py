"""Objects with known ground truth, for examples, tests and benchmarks.

- `sphere_views`, `sphere_hits`: an analytic sphere ray-traced through any cameras (exact masks and distances);
  the product's own (`gtr_backend.views.sphere`: the server warms up on it).
- `objects`: procedural textured meshes rendered with the project's rasterizer.
"""

from gtr_backend.views.sphere import sphere_hits, sphere_views

from .objects import ProceduralObject, orbit_render, render_object, toy_object

__all__ = ["ProceduralObject", "orbit_render", "render_object", "sphere_hits", "sphere_views", "toy_object"]
