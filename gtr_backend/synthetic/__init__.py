"""Objects with known ground truth, for examples, tests and benchmarks.

- `sphere`: an analytic sphere ray-traced through any cameras (exact masks and distances).
- `objects`: procedural textured meshes rendered with the project's rasterizer.
"""

from .sphere import sphere_hits, sphere_views

__all__ = ["sphere_hits", "sphere_views"]
