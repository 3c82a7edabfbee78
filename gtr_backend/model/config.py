"""One configuration dataclass for every GTR model size, and the named presets.

`GTRConfig` fixes the architecture (and so the weights' shapes); nothing else about the model is global.
`preset(name)` returns a fresh copy of a named configuration:

- ``gtr-paper``: the released GTR network (docs/method.md, section 2), 411,403,556 parameters.
- ``gtr-small``: a CPU-sized model (256x256 views, 64x64 triplane) whose forward pass takes well under a
  second on two CPU cores.
- ``gtr-base``: gtr-small wider (320) and deeper (8 blocks), the campaign's larger candidate.
- ``gtr-tiny``: a toy model for unit tests (64x64 views, 32x32 triplane).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError

Upsampler = Literal["pixelshuffle", "deconv"]


@dataclass(frozen=True)
class GTRConfig:
    """Architecture of a GTR model.

    Shapes that follow from it: each view of ``image_size``^2 pixels becomes
    ``(image_size / patch_size)^2`` tokens; the triplane has 3 planes of
    ``triplane_channels x triplane_resolution^2`` with ``triplane_resolution = plane_tokens * upsample_factor``.
    """

    name: str = "custom"
    # Views and encoder.
    image_size: int = 512
    patch_size: int = 16
    in_channels: int = 10  # RGB on white (3), ray direction (3), Pluecker moment cross(d, o) (3), mask (1)
    # Transformer.
    width: int = 1024
    depth: int = 24
    num_heads: int = 16
    head_dim: int = 64
    ff_hidden: int = 4096  # GEGLU: width -> 2 * ff_hidden -> gate -> ff_hidden -> width
    plane_tokens: int = 32  # learned plane tokens per side of each of the 3 planes
    # Upsampler and triplane.
    upsampler: Upsampler = "pixelshuffle"  # "deconv" is LRM's transposed convolution (paper's ablation)
    upsample_factor: int = 8
    triplane_channels: int = 40
    # Fields.
    mlp_width: int = 32
    density_layers: int = 3
    color_layers: int = 4
    joint_mlp: bool = False  # one MLP for density and colour (paper's ablation) instead of two
    # Use.
    min_views: int = 4
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.patch_size, int) and self.patch_size >= 1):
            problems.append(f"patch_size must be a whole number of pixels, at least 1, not {self.patch_size!r}")
        elif self.image_size % self.patch_size:
            problems.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.upsampler not in ("pixelshuffle", "deconv"):
            problems.append(f"upsampler must be 'pixelshuffle' or 'deconv', not {self.upsampler!r}")
        for field in (
            "width",
            "depth",
            "num_heads",
            "head_dim",
            "ff_hidden",
            "plane_tokens",
            "upsample_factor",
            "triplane_channels",
            "mlp_width",
            "min_views",
            "in_channels",
        ):
            if getattr(self, field) < 1:
                problems.append(f"{field} must be at least 1")
        if self.density_layers < 2 or self.color_layers < 2:
            problems.append("the density and colour MLPs need at least 2 layers each")
        if problems:
            raise ConfigError(f"invalid GTR configuration {self.name!r}: " + "; ".join(problems))

    @property
    def tokens_per_side(self) -> int:
        """Image tokens per side of one view (32 for gtr-paper)."""
        return self.image_size // self.patch_size

    @property
    def triplane_resolution(self) -> int:
        """Side of each triplane plane after upsampling (256 for gtr-paper)."""
        return self.plane_tokens * self.upsample_factor

    def replace(self, **changes: Any) -> GTRConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GTRConfig:
        """Build from a dict as written by `to_dict`; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown GTR configuration fields: {', '.join(unknown)}")
        return cls(**data)


PRESETS: dict[str, GTRConfig] = {
    "gtr-paper": GTRConfig(name="gtr-paper"),
    "gtr-small": GTRConfig(
        name="gtr-small",
        image_size=256,
        patch_size=16,
        width=256,
        depth=6,
        num_heads=4,
        head_dim=64,
        ff_hidden=1024,
        plane_tokens=16,
        upsample_factor=4,
        triplane_channels=32,
    ),
    "gtr-tiny": GTRConfig(
        name="gtr-tiny",
        image_size=64,
        patch_size=8,
        width=64,
        depth=2,
        num_heads=2,
        head_dim=32,
        ff_hidden=128,
        plane_tokens=8,
        upsample_factor=4,
        triplane_channels=8,
        mlp_width=16,
        min_views=1,
    ),
}
# A wider, deeper gtr-small (14.4 M parameters, 29 MB in bfloat16, within a campaign's default `carry_mib` and
# what the add-on ships): the larger candidate of the training campaign's preset probe (`gtr campaign --probe`).
PRESETS["gtr-base"] = PRESETS["gtr-small"].replace(name="gtr-base", width=320, depth=8, num_heads=5, ff_hidden=1280)


def preset(name: str, **changes: Any) -> GTRConfig:
    """The named preset, optionally with fields changed (e.g. ``preset("gtr-paper", upsampler="deconv")``)."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
    return config.replace(**changes) if changes else config
