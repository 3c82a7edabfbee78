"""LPIPS (Zhang et al. 2018, AlexNet variant): a learned perceptual distance between images, lower is closer.

The network is the five ReLU stages of AlexNet; each stage's features are normalised to unit length per
pixel, the squared difference is weighted per channel by a learned non-negative 1x1 layer, averaged over
pixels, and the five stages are summed.

No weights ship with the project and none are downloaded. `load_lpips` reads files the user supplies:
torchvision's AlexNet (`features.N.weight/bias`) plus the LPIPS linear layers (`linK.model.1.weight`, the
`alex.pth` of the `lpips` package), either together or in two files, as safetensors or a PyTorch checkpoint
(read with `weights_only=True`). The `lpips` package's own full state dict (`net.sliceK.N.*`) is read too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from gtr_backend.errors import WeightsError

CHANNELS = (64, 192, 384, 256, 256)
_CONVS = (0, 3, 6, 8, 10)  # indices of AlexNet's conv layers in torchvision's `features`
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        )
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)
        self.shift: Tensor
        self.scale: Tensor
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def stages(self, image: Tensor) -> list[Tensor]:
        """image (N, 3, H, W) in [0, 1] -> the five ReLU feature maps."""
        x = ((image * 2 - 1) - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index - 1 in _CONVS:  # the ReLU right after a conv
                taps.append(x)
        return taps

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """a, b (N, 3, H, W) in [0, 1] (at least 32x32) -> distance per image (N,)."""
        total = torch.zeros(a.shape[0], device=a.device, dtype=a.dtype)
        for lin, fa, fb in zip(self.lins, self.stages(a), self.stages(b), strict=True):
            na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((na - nb) ** 2).mean(dim=(1, 2, 3))
        return total


def _read(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: LPIPS weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{path}: cannot read LPIPS weights ({error})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict of tensors")
    return {str(k): v for k, v in state.items() if isinstance(v, Tensor)}


def _canonical(key: str) -> str:
    key = re.sub(r"^net\.slice\d\.(\d+)\.", r"features.\1.", key)  # the lpips package's full state dict
    return re.sub(r"^lin(\d)\.model\.1\.", r"lins.\1.", key)


def load_lpips(paths: Sequence[Path], device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS with AlexNet and linear-layer weights merged from `paths` (see the module docstring)."""
    state: dict[str, Tensor] = {}
    for path in paths:
        state.update({_canonical(k): v for k, v in _read(Path(path)).items()})
    model = LPIPS()
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        names = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise WeightsError(
            f"LPIPS weights are incomplete: missing {names}. Give torchvision's AlexNet weights "
            "(alexnet-owt-7be5be79.pth) and the lpips package's weights/v0.1/alex.pth, e.g. --lpips A.pth B.pth"
        )
    for key, value in wanted.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise WeightsError(f"LPIPS weight {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")
    model.load_state_dict({k: state[k].float() for k in wanted})
    return model.to(device).eval().requires_grad_(False)


def lpips_distance(model: LPIPS, a: Tensor, b: Tensor, batch: int = 8) -> Tensor:
    """Per-image LPIPS of a, b (N, 3, H, W) in [0, 1], in batches, no autograd."""
    device = next(model.parameters()).device
    with torch.no_grad():
        out = [
            model(a[i : i + batch].to(device).float(), b[i : i + batch].to(device).float())
            for i in range(0, len(a), batch)
        ]
    return torch.cat(out).cpu()
