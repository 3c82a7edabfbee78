"""Triplane transformer: learned plane tokens attend jointly with image tokens.

Input image tokens (B, V*h*w, width); output plane features (B, 3, width, n, n) with n = plane_tokens.
The sequence is [3*n*n plane tokens (plane, row, column) ; image tokens]; each block is pre-norm
self-attention then pre-norm GEGLU feed-forward; there is no positional encoding besides the learned
plane tokens. After the blocks only the plane tokens are kept and normalised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import GTRConfig


class SelfAttention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (flash / memory-efficient kernels)."""

    def __init__(self, width: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        inner = num_heads * head_dim
        self.num_heads = num_heads
        self.q = nn.Linear(width, inner, bias=False)
        self.k = nn.Linear(width, inner, bias=False)
        self.v = nn.Linear(width, inner, bias=False)
        self.out = nn.Linear(inner, width)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, width) -> (B, L, width)."""
        b, length, _ = x.shape

        def heads(t: Tensor) -> Tensor:
            return t.view(b, length, self.num_heads, -1).transpose(1, 2)  # (B, heads, L, head_dim)

        y = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)))
        return torch.as_tensor(self.out(y.transpose(1, 2).reshape(b, length, -1)))


class GEGLUFeedForward(nn.Module):
    """width -> 2*hidden, split into (value, gate), value * gelu(gate) -> hidden -> width."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width, 2 * hidden)
        self.out = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return torch.as_tensor(self.out(value * F.gelu(gate)))


class TransformerBlock(nn.Module):
    def __init__(self, config: GTRConfig) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(config.width)
        self.attn = SelfAttention(config.width, config.num_heads, config.head_dim)
        self.norm_ff = nn.LayerNorm(config.width)
        self.ff = GEGLUFeedForward(config.width, config.ff_hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm_attn(x))
        return x + self.ff(self.norm_ff(x))


class TriplaneTransformer(nn.Module):
    def __init__(self, config: GTRConfig) -> None:
        super().__init__()
        n, width = config.plane_tokens, config.width
        self.gradient_checkpointing = config.gradient_checkpointing
        # mul_, not "*": on the meta device (loading weights) "*" runs a Python decomposition that imports
        # torch._dynamo (about a second); the values are the same.
        self.plane_tokens = nn.Parameter(torch.randn(1, 3, width, n, n).mul_(math.sqrt(1.0 / width)))
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(width)

    def forward(self, image_tokens: Tensor) -> Tensor:
        """image_tokens: (B, V*h*w, width) -> plane features (B, 3, width, n, n)."""
        b = image_tokens.shape[0]
        _, planes, width, n, _ = self.plane_tokens.shape
        queries = self.plane_tokens.permute(0, 1, 3, 4, 2).reshape(1, planes * n * n, width)
        x = torch.cat([queries.expand(b, -1, -1).to(image_tokens.dtype), image_tokens], dim=1)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        x = self.norm_out(x[:, : planes * n * n])
        return x.reshape(b, planes, n, n, width).permute(0, 1, 4, 2, 3)
