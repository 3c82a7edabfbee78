"""From a `ViewSet` to a triplane with a loaded model: the feed-forward half of GTR.

views (any size, world frame) -> resized to the model's resolution -> 10-channel inputs
(1, V, 10, S, S) -> model -> triplane (3, C, R, R), float32, on the model's device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import GTR, Precision
from .views import ViewSet, model_inputs


def prepare_inputs(model: GTR, views: ViewSet) -> Tensor:
    """(1, V, 10, S, S) model inputs on the model's device; checks the number of views."""
    device = next(model.parameters()).device
    inputs = model_inputs(views.to(device).resized(model.config.image_size))[None]
    model.check_inputs(inputs)
    return inputs


@torch.no_grad()
def predict_triplane(model: GTR, views: ViewSet, precision: Precision = "auto") -> Tensor:
    """The triplane (3, C, R, R) of a view set (float32, on the model's device)."""
    return model.triplane(prepare_inputs(model, views), precision)[0]
