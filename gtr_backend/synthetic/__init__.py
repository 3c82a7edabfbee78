"""Objects with known ground truth, for examples, tests and benchmarks.

- `sphere`: an analytic sphere ray-traced through any cameras (exact masks and distances).
- `objects`: procedural textured meshes rendered with the project's rasterizer.
"""

from .objects import ProceduralObject, orbit_render, render_object, toy_object
from .sphere import sphere_hits, sphere_views

__all__ = ["ProceduralObject", "orbit_render", "render_object", "sphere_hits", "sphere_views", "toy_object"]
