"""Per-instance texture refinement against the input views."""

from .texture import ColorField, RefineOptions, RefineResult, refine_texture, visible_surface

__all__ = ["ColorField", "RefineOptions", "RefineResult", "refine_texture", "visible_surface"]
