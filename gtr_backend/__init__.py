"""GTR backend: posed views of an object in, a textured mesh out.

Public API (everything else is internal and may move):
    load_views(path, ...)            -> ViewSet          (gtr_backend.views)
    preset(name) / GTRConfig / GTR                        (gtr_backend.model)
    load_model(weights_path, device) -> GTR              (gtr_backend.weights)
    predict_triplane(model, views)   -> triplane (3, C, R, R)
    render_triplane(model.field, triplane, intrinsics, c2w, H, W) -> VolumeRender
    reconstruct(views, model_or_weights, device, options, progress, cancel) -> Reconstruction
The world frame is Y-up with the object in [-1, 1]^3; cameras are OpenCV camera-to-world (views.cameras).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public names and the modules that hold them. They are imported on first use (PEP 562), so that
# `gtr_backend.contract` and `gtr_backend.errors` import without torch (the Blender add-on reads the contract).
_LAZY = {
    "ConfigError": "errors",
    "GTRError": "errors",
    "ViewError": "errors",
    "WeightsError": "errors",
    "WriteError": "errors",
    "GTR": "model",
    "PRESETS": "model",
    "GTRConfig": "model",
    "preset": "model",
    "predict_triplane": "reconstruction",
    "prepare_inputs": "reconstruction",
    "Reconstruction": "reconstruction",
    "ReconstructOptions": "reconstruction",
    "reconstruct": "reconstruction",
    "VolumeOptions": "render",
    "VolumeRender": "render",
    "render_triplane": "render",
    "Orbit": "views",
    "ViewSet": "views",
    "load_views": "views",
    "save_views": "views",
    "convert_released_checkpoint": "weights",
    "load_model": "weights",
    "save_weights": "weights",
}

if TYPE_CHECKING:
    from .errors import ConfigError, GTRError, ViewError, WeightsError, WriteError
    from .model import GTR, PRESETS, GTRConfig, preset
    from .reconstruction import Reconstruction, ReconstructOptions, predict_triplane, prepare_inputs, reconstruct
    from .render import VolumeOptions, VolumeRender, render_triplane
    from .views import Orbit, ViewSet, load_views, save_views
    from .weights import convert_released_checkpoint, load_model, save_weights


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GTR",
    "PRESETS",
    "ConfigError",
    "GTRConfig",
    "GTRError",
    "Orbit",
    "ReconstructOptions",
    "Reconstruction",
    "ViewError",
    "ViewSet",
    "VolumeOptions",
    "VolumeRender",
    "WeightsError",
    "WriteError",
    "__version__",
    "convert_released_checkpoint",
    "load_model",
    "load_views",
    "predict_triplane",
    "prepare_inputs",
    "preset",
    "reconstruct",
    "render_triplane",
    "save_views",
    "save_weights",
]
