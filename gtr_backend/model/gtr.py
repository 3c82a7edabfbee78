"""The GTR network: view maps in, triplane out; the triplane's field answers density and colour queries.

    inputs (B, V, 10, H, W) --PatchEncoder--> image tokens (B, V*h*w, width)
        --TriplaneTransformer--> plane features (B, 3, width, n, n)
        --upsampler--> triplane (B, 3, C, R, R)            [world frame, docs/method.md, section 3]
    TriplaneField.query(triplane, points (B, N, 3)) -> density (B, N, 1), rgb (B, N, 3)

`views.model_inputs(viewset)` builds the 10-channel inputs from posed images.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import ViewError
from .config import GTRConfig
from .encoder import PatchEncoder
from .fields import TriplaneField
from .transformer import TriplaneTransformer
from .upsampler import build_upsampler

Precision = Literal["auto", "fp32", "bf16", "fp16"]


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager[object]:
    """Mixed precision for the transformer: "auto" is bf16 on CUDA and fp32 elsewhere."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


class GTR(nn.Module):
    def __init__(self, config: GTRConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = PatchEncoder(config)
        self.transformer = TriplaneTransformer(config)
        self.upsampler = build_upsampler(config)
        self.field = TriplaneField(config)

    def forward(self, inputs: Tensor) -> Tensor:
        """inputs (B, V, in_channels, image_size, image_size) -> triplane (B, 3, C, R, R)."""
        self.check_inputs(inputs)
        planes = self.transformer(self.encoder(inputs))
        return torch.as_tensor(self.upsampler(planes))

    @torch.no_grad()
    def triplane(self, inputs: Tensor, precision: Precision = "auto") -> Tensor:
        """Inference: inputs (B, V, 10, H, W) -> float32 triplane (B, 3, C, R, R), no autograd graph."""
        with autocast(inputs.device, precision):
            return self.forward(inputs).float()

    def check_inputs(self, inputs: Tensor) -> None:
        c = self.config
        expected = (c.in_channels, c.image_size, c.image_size)
        if inputs.dim() != 5 or tuple(inputs.shape[2:]) != expected:
            raise ViewError(
                f"model {c.name!r} expects inputs of shape (batch, views, {c.in_channels}, {c.image_size}, "
                f"{c.image_size}), got {tuple(inputs.shape)}; build them with gtr_backend.views.model_inputs "
                f"after ViewSet.resized({c.image_size})"
            )
        if inputs.shape[1] < c.min_views:
            raise ViewError(
                f"model {c.name!r} needs at least {c.min_views} views, got {inputs.shape[1]}; "
                f"add views (4 around the object work best)"
            )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
