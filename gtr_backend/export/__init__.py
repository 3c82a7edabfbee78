"""UV unwrapping, texture baking and mesh files."""

from .bake import bake_texture, bake_vertex_colors, pull_push, unwrap
from .writers import FORMATS, to_trimesh, write_mesh

__all__ = ["FORMATS", "bake_texture", "bake_vertex_colors", "pull_push", "to_trimesh", "unwrap", "write_mesh"]
