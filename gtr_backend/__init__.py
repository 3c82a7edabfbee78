"""GTR backend: posed views of an object in, a triplane (and, later, a textured mesh) out.

Public API (everything else is internal and may move):
    load_views(path, ...)            -> ViewSet          (gtr_backend.views)
    preset(name) / GTRConfig / GTR                        (gtr_backend.model)
    load_model(weights_path, device) -> GTR              (gtr_backend.weights)
    predict_triplane(model, views)   -> triplane (3, C, R, R)
    render_triplane(model.field, triplane, intrinsics, c2w, H, W) -> VolumeRender
The world frame is Y-up with the object in [-1, 1]^3; cameras are OpenCV camera-to-world (views.cameras).
"""

from .errors import ConfigError, GTRError, ViewError, WeightsError
from .model import GTR, PRESETS, GTRConfig, preset
from .pipeline import predict_triplane, prepare_inputs
from .render import VolumeOptions, VolumeRender, render_triplane
from .views import Orbit, ViewSet, load_views, save_views
from .weights import convert_released_checkpoint, load_model, save_weights

__version__ = "0.1.0"

__all__ = [
    "GTR",
    "PRESETS",
    "ConfigError",
    "GTRConfig",
    "GTRError",
    "Orbit",
    "ViewError",
    "ViewSet",
    "VolumeOptions",
    "VolumeRender",
    "WeightsError",
    "__version__",
    "convert_released_checkpoint",
    "load_model",
    "load_views",
    "predict_triplane",
    "prepare_inputs",
    "preset",
    "render_triplane",
    "save_views",
    "save_weights",
]
